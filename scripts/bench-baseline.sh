#!/usr/bin/env bash
# Build an earlier commit for `npm run bench -- --baseline DIR` (bench/compare.ts):
#   scripts/bench-baseline.sh REV [DIR]    (default DIR: /tmp/hatsim-baseline-REV)
set -euo pipefail
rev="${1:?give a git revision, e.g. f4c791e}"
dir="${2:-/tmp/hatsim-baseline-$rev}"
cd "$(dirname "$0")/.."
if [ ! -d "$dir" ]; then git worktree add --detach "$dir" "$rev"; fi
(cd "$dir" && npm ci --no-audit --no-fund --silent && npm run build --silent)
echo "$dir"
