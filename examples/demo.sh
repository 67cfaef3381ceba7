#!/usr/bin/env bash
# The kd-edge demo on embedded defaults: make the synthetic shapes set, train a small YOLOv5 on it,
# validate the saved weights and print the metrics table. Everything stays under ./datasets and ./runs.
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS="${EPOCHS:-20}"
kd() { node --conditions=source --import tsx packages/trainer/src/bin/kd-trainer.ts "$@"; }

echo "== 1/3 synthetic dataset"
kd data synth --out datasets/shapes --train 512 --val 128 --imgsz 128 --classes 6 --seed 0

echo "== 2/3 train yolov5n for ${EPOCHS} epochs at 128 px"
kd train --data datasets/shapes/data.yaml --model yolov5n --imgsz 128 --batch-size 16 \
  --epochs "${EPOCHS}" --project runs/demo --name shapes --exist-ok --seed 0

echo "== 3/3 validate the best weights"
kd val --weights runs/demo/shapes/weights/best.kdw --data datasets/shapes/data.yaml --imgsz 128
