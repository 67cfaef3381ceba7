#!/usr/bin/env bash
# Rebuilds packages/trainer/wasm/kd-simd.wasm from native/kd-simd.c, byte for byte.
#   bash packages/trainer/native/build.sh          # rebuild and write the .wasm
#   bash packages/trainer/native/build.sh --check  # rebuild into a temporary file and compare
# Needs Debian 12's clang 14, lld 14 and wabt: apt-get install -y clang lld wabt
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/../wasm/kd-simd.wasm"
tmp="$(mktemp --suffix=.wasm)"
trap 'rm -f "$tmp"' EXIT
cd "$here"   # relative source path: the file name is the only path the build records
clang --target=wasm32 -O3 -msimd128 -fno-builtin -nostdlib \
  -Wl,--no-entry -Wl,--import-memory -Wl,--strip-debug \
  -o "$tmp" kd-simd.c
# The module shares tfjs-backend-wasm's heap, so it may own none of it: no data segments, and no use
# of the C stack (its pointer would point into tfjs's memory).
if wasm-objdump -h "$tmp" | grep -qE '^ +Data '; then echo "kd-simd.wasm has a data segment; refusing" >&2; exit 1; fi
if wasm-objdump -d "$tmp" | grep -qE 'global\.(get|set)'; then echo "kd-simd.wasm uses the C stack; refusing" >&2; exit 1; fi
if [[ "${1:-}" == "--check" ]]; then
  cmp "$tmp" "$out" && echo "kd-simd.wasm matches its source ($(clang --version | head -1))"
else
  mkdir -p "$(dirname "$out")"
  cp "$tmp" "$out"
  echo "wrote $out ($(stat -c %s "$out") bytes)"
fi
