#!/usr/bin/env bash
# Compile-and-link check of kd-trt-runner where there is no TensorRT or CUDA: builds the runner against kd-edge's own
# declaration headers (compat/) and link stub for both TensorRT API generations -- 8.2 (bindings, enqueueV2) and
# 10.3 (tensor names, enqueueV3) -- with warnings as errors. The stub-linked binaries speak the whole protocol and
# answer load with LOAD_FAILED (no TensorRT inside). Only a build on a device proves the real headers agree.
#
#   check-compile.sh [OUT_DIR]        binaries: OUT_DIR/kd-trt-runner-trt8.2, OUT_DIR/kd-trt-runner-trt10.3
#   KD_TRT_SANITIZE=1 check-compile.sh   also builds OUT_DIR/kd-trt-runner-trt10.3-asan (AddressSanitizer + UBSan)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${1:-$(mktemp -d)}"
CXX="${CXX:-g++}"
mkdir -p "$OUT"
SRC=("$HERE/src/main.cpp" "$HERE/src/json.cpp" "$HERE/src/shm.cpp" "$HERE/src/engine.cpp" "$HERE/compat/link-stub.cpp")
FLAGS=(-std=c++17 -Wall -Wextra -Wpedantic -Werror -I"$HERE/compat")

build() { # major minor patch output [extra flags...]
  local major=$1 minor=$2 patch=$3 out=$4
  shift 4
  "$CXX" "${FLAGS[@]}" "$@" -DKD_COMPAT_TRT_MAJOR="$major" -DKD_COMPAT_TRT_MINOR="$minor" -DKD_COMPAT_TRT_PATCH="$patch" \
    "${SRC[@]}" -o "$out"
  echo "ok: TensorRT $major.$minor compat build -> $out"
}

# The generations build in parallel; either failing fails the check.
pids=()
build 8 2 1 "$OUT/kd-trt-runner-trt8.2" -O2 & pids+=($!)
build 10 3 0 "$OUT/kd-trt-runner-trt10.3" -O2 & pids+=($!)
if [ "${KD_TRT_SANITIZE:-0}" = 1 ]; then
  build 10 3 0 "$OUT/kd-trt-runner-trt10.3-asan" -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined & pids+=($!)
fi
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
