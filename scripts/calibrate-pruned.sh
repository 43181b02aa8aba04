#!/usr/bin/env bash
# Calibration files for a prune grid's models (docs/PRUNING.md, "Measuring latency"):
#   scripts/calibrate-pruned.sh GRID_DIR HARDWARE_ID [METHODS] [PARTS]
# GRID_DIR is a `hatsim prune --trained models/brown-small ... --out GRID_DIR` output,
# METHODS a space-separated list (default "comp"), PARTS "all" (default: embedding,
# decoderLayer, lmHead from GRID_DIR/<method>-r<ratio>/model, then the adapter, which
# pruning leaves alone, from the generated plain-op graph) or "decoderLayer".
# Writes $CAL/<HARDWARE_ID>/brown-small/ (the unpruned model, same plain ops as the
# pruned graphs; skipped when SKIP_BASE=1) and $CAL/<HARDWARE_ID>/brown-small-<method>-r<ratio>/
# (CAL defaults to calibration). Each run is niced and single-threaded.
set -euo pipefail
grid="${1:?give the prune grid folder, e.g. out/prune-brown}"
hw="${2:?give the hardware id, e.g. ci-cpu-2core}"
methods="${3:-comp}"
parts="${4:-all}"
cal="${CAL:-calibration}"
model="${MODEL:-brown-small}"
cd "$(dirname "$0")/.."
h=(nice -n 19 node dist/src/cli/main.js calibrate --model "$model" --hardware-id "$hw" --out "$cal" --progress false)
if [ "${SKIP_BASE:-0}" != 1 ]; then
  echo "== $model (unpruned, plain ops) load: $(cut -d' ' -f1-3 /proc/loadavg)"
  "${h[@]}" --ops standard
fi
for m in $methods; do
  for r in 0.1 0.2 0.3; do
    d="$grid/$m-r$r"
    if [ ! -f "$d/pruning.json" ]; then echo "== $d: no pruning.json (grid point skipped), nothing to calibrate"; continue; fi
    id="$model-$m-r$r"
    echo "== $id load: $(cut -d' ' -f1-3 /proc/loadavg)"
    if [ "$parts" = all ]; then
      "${h[@]}" --onnx-dir "$d/model" --parts embedding,decoderLayer,lmHead --as-model-id "$id"
      "${h[@]}" --ops standard --parts adapter --as-model-id "$id" --pruning "$d/pruning.json"
    else
      "${h[@]}" --onnx-dir "$d/model" --parts "$parts" --as-model-id "$id"
    fi
  done
done
