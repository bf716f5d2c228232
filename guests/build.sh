#!/usr/bin/env bash
# Builds every guest in src/*.c into wasm/NAME.wasm (WASI preview 1 command modules).
#
#   guests/build.sh           rebuild all guests in place (idempotent: same sources, same bytes)
#   guests/build.sh --check   rebuild into a temporary directory and compare with the committed
#                             wasm/*.wasm; prints each guest that differs or is missing and
#                             exits 1 if any does (CI uses this to prove the .wasm files are
#                             built from the sources next to them)
#
# Toolchain (Debian 12): apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32
# -msimd128: WebAssembly SIMD is to wasm32 what SSE2 is to x86-64, the baseline native code
# gets; wasmtime supports it everywhere and canonicalises its NaNs in deterministic mode.
# Override the compiler with CC=... (it must accept --target=wasm32-wasi).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cc="${CC:-clang}"
check=0
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

if ! command -v "$cc" >/dev/null; then
  echo "error: $cc not found; install: apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32" >&2
  exit 2
fi

if [ "$check" = 1 ]; then
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
else
  out="$here/wasm"
  mkdir -p "$out"
fi

cd "$here"
for src in src/*.c; do
  name="$(basename "$src" .c)"
  # Relative source paths keep the build independent of where the repository is checked out.
  "$cc" --target=wasm32-wasi -O2 -msimd128 -s -o "$out/$name.wasm" "$src" -lm
done

if [ "$check" = 1 ]; then
  status=0
  for built in "$out"/*.wasm; do
    name="$(basename "$built")"
    if [ ! -f "wasm/$name" ]; then
      echo "missing: guests/wasm/$name (run guests/build.sh)"
      status=1
    elif ! cmp -s "$built" "wasm/$name"; then
      echo "differs: guests/wasm/$name (run guests/build.sh)"
      status=1
    fi
  done
  for committed in wasm/*.wasm; do
    [ -e "$committed" ] || continue
    name="$(basename "$committed")"
    if [ ! -f "$out/$name" ]; then
      echo "stale: guests/$committed has no source in guests/src/"
      status=1
    fi
  done
  [ "$status" = 0 ] && echo "guests: all $(ls "$out"/*.wasm | wc -l) .wasm files match their sources"
  exit "$status"
fi
echo "guests: built $(ls src/*.c | wc -l) modules into guests/wasm/"
