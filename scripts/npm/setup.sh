#!/usr/bin/env bash
# Install the pinned JS packages of scripts/npm/package.json into target/npm (git-ignored).
# Uses package-lock.json when present so that transitive versions are reproducible.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="$root/target/npm"
mkdir -p "$dest"
cp "$root/scripts/npm/package.json" "$dest/package.json"
if [ -f "$root/scripts/npm/package-lock.json" ]; then
  cp "$root/scripts/npm/package-lock.json" "$dest/package-lock.json"
  (cd "$dest" && npm ci --no-audit --no-fund)
else
  (cd "$dest" && npm install --no-audit --no-fund && cp package-lock.json "$root/scripts/npm/package-lock.json")
fi
