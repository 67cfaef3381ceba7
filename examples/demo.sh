#!/usr/bin/env bash
# The kd-edge demo on embedded defaults: make the synthetic shapes set, train a small YOLOv5 on it,
# validate it, export it to fp32 / fp16 / int8 ONNX plus TensorRT calibration, then sign a model
# package and verify it. Everything stays under ./datasets and ./runs.
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS="${EPOCHS:-20}"
RUN=runs/demo/shapes
kd() { node --conditions=source --import tsx packages/trainer/src/bin/kd-trainer.ts "$@"; }

echo "== 1/5 synthetic dataset"
kd data synth --out datasets/shapes --train 512 --val 128 --imgsz 128 --classes 6 --seed 0

echo "== 2/5 train yolov5n for ${EPOCHS} epochs at 128 px"
kd train --data datasets/shapes/data.yaml --model yolov5n --imgsz 128 --batch-size 16 \
  --epochs "${EPOCHS}" --project runs/demo --name shapes --exist-ok --seed 0

echo "== 3/5 validate the best weights"
kd val --weights "${RUN}/weights/best.kdw" --data datasets/shapes/data.yaml --imgsz 128

echo "== 4/5 export: fp32, fp16, int8 (calibrated), TensorRT calib.cache + plan; each validated and timed"
kd export --weights "${RUN}/weights/best.kdw" --imgsz 128 --formats onnx,fp16,int8-dynamic,int8,trt \
  --data datasets/shapes/data.yaml --calib-images 128 --out "${RUN}/export"

echo "== 5/5 sign a model package and verify it"
[ -f runs/demo/keys/fleet.key ] || { mkdir -p runs/demo/keys && kd keys gen --out runs/demo/keys --name fleet; }
kd package --from "${RUN}/export" --name shapes --version 1.0.0 --sign runs/demo/keys/fleet.key \
  --val-data datasets/shapes/data.yaml --out runs/demo/packages/shapes-1.0.0
kd verify runs/demo/packages/shapes-1.0.0.tar --trust runs/demo/keys/fleet.pub
