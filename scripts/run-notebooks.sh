#!/usr/bin/env bash
# Executes every notebooks/*.ipynb headlessly (Jupyter nbconvert + the tslab
# TypeScript kernel) and exits non-zero if a notebook has committed outputs
# or any cell fails. Installs what is missing (idempotent, quiet):
#   Debian packages jupyter-nbconvert python3-nbclient python3-ipykernel (needs root + apt-get),
#   the tslab kernel spec (from the tslab devDependency in node_modules),
#   dist/ (npm run build) when it is missing.
#
#   scripts/run-notebooks.sh                 check + execute all notebooks
#   scripts/run-notebooks.sh notebooks/02-sensitivity.ipynb    only these
#   scripts/run-notebooks.sh --check         only check that no outputs are committed
#   scripts/run-notebooks.sh --strip         remove outputs / execution counts in place
#
# Environment: NOTEBOOK_OUT (where executed copies go; default a temp dir,
# deleted unless KEEP_NOTEBOOK_OUT=1), NOTEBOOK_TIMEOUT (s per cell, default 300),
# PYTHON (the interpreter that has Jupyter; default /usr/bin/python3),
# HATSIM_NOTEBOOK_LIVE=0 (04-live-vs-sim skips its ~20 s live run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

mode=run
files=()
for a in "$@"; do
  case "$a" in
    --check) mode=check ;;
    --strip) mode=strip ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) files+=("$a") ;;
  esac
done
if [ ${#files[@]} -eq 0 ]; then
  shopt -s nullglob
  files=(notebooks/*.ipynb)
  shopt -u nullglob
fi
if [ ${#files[@]} -eq 0 ]; then echo "run-notebooks: no notebooks/*.ipynb" >&2; exit 1; fi

# --- committed notebooks must not hold outputs (checked or stripped with node: no Python needed) ---
node - "$mode" "${files[@]}" <<'EOF'
const fs = require('node:fs');
const [mode, ...files] = process.argv.slice(2);
let bad = 0;
for (const f of files) {
  const nb = JSON.parse(fs.readFileSync(f, 'utf8'));
  let dirty = 0;
  for (const c of nb.cells) {
    if (c.cell_type !== 'code') continue;
    if ((c.outputs && c.outputs.length) || c.execution_count !== null || c.metadata?.execution) {
      dirty++;
      c.outputs = [];
      c.execution_count = null;
      if (c.metadata) delete c.metadata.execution;   // nbclient's timestamps
    }
  }
  if (nb.metadata?.kernelspec?.name !== 'tslab') { console.error(`${f}: kernelspec is not tslab`); bad++; }
  if (dirty && mode === 'strip') {
    fs.writeFileSync(f, JSON.stringify(nb, null, 1) + '\n');
    console.log(`${f}: stripped ${dirty} cell(s)`);
  } else if (dirty) {
    console.error(`${f}: ${dirty} code cell(s) hold outputs or execution counts; run scripts/run-notebooks.sh --strip`);
    bad++;
  }
}
process.exit(bad ? 1 : 0);
EOF
[ "$mode" = run ] || exit 0

# --- Jupyter (nbconvert, nbclient, ipykernel) ---
PYTHON=${PYTHON:-/usr/bin/python3}
[ -x "$PYTHON" ] || PYTHON=$(command -v python3 || true)
has_jupyter() { [ -n "$PYTHON" ] && "$PYTHON" -c 'import nbconvert, nbclient, ipykernel, jupyter_client' 2>/dev/null; }
if ! has_jupyter; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "run-notebooks: installing jupyter-nbconvert python3-nbclient python3-ipykernel (apt)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      jupyter-nbconvert python3-nbclient python3-ipykernel >/dev/null
    PYTHON=/usr/bin/python3
  fi
  has_jupyter || { echo "run-notebooks: need Python with nbconvert, nbclient and ipykernel (apt-get install jupyter-nbconvert python3-nbclient python3-ipykernel, or set PYTHON)" >&2; exit 1; }
fi

# --- tslab (devDependency) and its kernel spec ---
[ -x node_modules/.bin/tslab ] || { echo "run-notebooks: node_modules/.bin/tslab missing: run npm ci first" >&2; exit 1; }
export PATH="$ROOT/node_modules/.bin:$PATH"   # the kernel spec starts the command `tslab`
if ! "$PYTHON" -c 'import sys; from jupyter_client.kernelspec import KernelSpecManager as K; sys.exit(0 if "tslab" in K().find_kernel_specs() else 1)'; then
  echo "run-notebooks: installing the tslab kernel spec"
  tslab install --python="$PYTHON" >/dev/null
fi

# --- the library the notebooks import ---
[ -f dist/src/index.js ] || npm run build --silent

# --- execute ---
OUT=${NOTEBOOK_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/hatsim-notebooks.XXXXXX")}
mkdir -p "$OUT"
[ -n "${NOTEBOOK_OUT:-}" ] || [ "${KEEP_NOTEBOOK_OUT:-0}" = 1 ] || trap 'rm -rf "$OUT"' EXIT
failed=()
t_all=$SECONDS
for f in "${files[@]}"; do
  t0=$SECONDS
  # nbclient (what `jupyter nbconvert --execute` runs), called directly so that a failing
  # cell's own output is reported: tslab's error replies carry no message, only stderr.
  if "$PYTHON" - "$f" "$OUT/$(basename "$f")" "${NOTEBOOK_TIMEOUT:-300}" <<'PY'
import os, sys
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

src, dst, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3])
nb = nbformat.read(src, as_version=4)
failing = {}
def on_cell_error(cell, cell_index, execute_reply):
    failing['index'] = cell_index
client = NotebookClient(nb, timeout=timeout, kernel_name='tslab', on_cell_error=on_cell_error,
                        resources={'metadata': {'path': os.path.dirname(os.path.abspath(src))}})
code = 0
try:
    client.execute()
except (CellExecutionError, CellTimeoutError, DeadKernelError) as e:
    code = 1
    i = failing.get('index')
    if i is None:
        print(f'{src}: {type(e).__name__}: {e}', file=sys.stderr)
    else:
        cell = nb.cells[i]
        code_cells = [j for j, c in enumerate(nb.cells) if c.cell_type == 'code']
        print(f'{src}: code cell {code_cells.index(i) + 1} of {len(code_cells)} failed:', file=sys.stderr)
        print('  | ' + cell.source.replace('\n', '\n  | '), file=sys.stderr)
        for o in cell.get('outputs', []):
            text = o.get('text') or '\n'.join(o.get('traceback', [])) or ''
            if o.get('output_type') == 'stream' and o.get('name') == 'stdout':
                text = '\n'.join(text.splitlines()[-10:])
            if text:
                print(f'  [{o.get("name", o.get("output_type"))}] ' + text.rstrip().replace('\n', '\n  '), file=sys.stderr)
finally:
    nbformat.write(nb, dst)
sys.exit(code)
PY
  then
    echo "run-notebooks: ok   $f ($((SECONDS - t0)) s)"
  else
    echo "run-notebooks: FAIL $f ($((SECONDS - t0)) s)" >&2
    failed+=("$f")
  fi
done
echo "run-notebooks: ${#files[@]} notebook(s) in $((SECONDS - t_all)) s${NOTEBOOK_OUT:+, executed copies in $OUT}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "run-notebooks: failed: ${failed[*]}" >&2
  exit 1
fi
