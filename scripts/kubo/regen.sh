#!/usr/bin/env bash
# Regenerate every golden vector under testdata/ from the real implementations.
#
#   bash scripts/kubo/regen.sh            # everything except the 1 GiB fixture (~25 min on 2 cores,
#                                         # ~15 of them Kubo on the 'hamt_subdirs' fixture)
#   bash scripts/kubo/regen.sh --huge     # also gib_plus_one (writes a 1 GiB file under target/, then deletes it)
#
# Installs only under target/ (venv, npm); fixtures are materialised into target/fixtures.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
huge=0
[ "${1:-}" = "--huge" ] && huge=1

# 1. tools
[ -x target/venv/bin/python ] || python3 -m venv target/venv
target/venv/bin/pip install -q kubo-python==0.1.5
[ -d target/npm/node_modules/ipfs-unixfs-importer ] || bash scripts/npm/setup.sh

export KUBO_PY_LOG_DIR="$root/target/kubo-log"

# 2. fixtures (the default set; the huge one only on request)
python3 scripts/kubo/fixtures.py target/fixtures >/dev/null

# 3. Kubo: defaults on every fixture, then the sharding-threshold experiments
python3 scripts/kubo/kubo.py vectors --include-large
for t in 1000B 1849B 1850B 1851B; do
  python3 scripts/kubo/kubo.py vectors --sharding-threshold "$t" hamt_small_50
done

# 4. JS importer vectors (+ comparison with Kubo, printed) and the CARs
if [ "$huge" = 1 ]; then
  python3 scripts/kubo/fixtures.py target/fixtures gib_plus_one >/dev/null
  python3 scripts/kubo/kubo.py vectors --include-huge gib_plus_one
  python3 scripts/kubo/kubo.py bench target/fixtures/gib_plus_one
  node scripts/npm/vectors.mjs --include-huge
  rm -f target/fixtures/gib_plus_one
else
  node scripts/npm/vectors.mjs
fi
node scripts/npm/car.mjs
