#!/usr/bin/env bash
# Start-up timing (issue 15): `hatsim --help` and a 1-device `hatsim run`, unbundled
# (dist/src/cli/main.js) and bundled (dist/cli/main.js, the bin), interleaved N rounds.
# Prints wall mean/min and CPU (user+sys) mean per case, and the load average before/after.
# Usage: bash scripts/startup-time.sh [N]   (after npm run build)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-15}
out=$(mktemp -d)
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$N"); do
  for c in src/cli cli; do
    /usr/bin/time -f "help dist/$c %e %U %S" node "dist/$c/main.js" --help >/dev/null
    /usr/bin/time -f "run dist/$c %e %U %S" node "dist/$c/main.js" run scenarios/tiny-local.yaml --out "$out/r" --quiet >/dev/null
  done
done 2>&1 | awk '{k=$1" "$2; n[k]++; w[k]+=$3; c[k]+=$4+$5; if(!(k in m)||$3<m[k])m[k]=$3}
  END{for(k in n) printf "%-18s wall mean %.3f s  min %.3f s  cpu mean %.3f s  (n=%d)\n",k,w[k]/n[k],m[k],c[k]/n[k],n[k]}' | sort
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$out"
