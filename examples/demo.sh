#!/usr/bin/env bash
# The kd-edge demo on embedded defaults: make the synthetic shapes set, distill a yolov5n student from the
# shipped yolov5s teacher (examples/teacher/, reproduced by examples/train-teacher.sh), validate it, export
# it to fp32 / fp16 / int8 ONNX plus TensorRT calibration, sign a model package and verify it, then start
# kd-fleet with its embedded broker and simulated devices (real kd-agents) and roll the package out in waves.
# Everything stays under ./datasets and ./runs. EPOCHS sets the student's epochs.
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS="${EPOCHS:-16}"
TEACHER="${TEACHER:-examples/teacher/shapes-yolov5s.fp16.onnx}"
RUN=runs/demo/student
kd() { node --conditions=source --import tsx packages/trainer/src/bin/kd-trainer.ts "$@"; }
START=$(date +%s)
step() { echo; echo "== [$(( $(date +%s) - START )) s] $*"; }

step "1/6 synthetic dataset (seed 0: the data the shipped teacher was trained on)"
kd data synth --out datasets/shapes --train 512 --val 128 --imgsz 128 --classes 6 --seed 0

step "2/6 distill: yolov5s teacher (ONNX Runtime) → yolov5n student, ${EPOCHS} epochs at 128 px"
kd distill --teacher "${TEACHER}" --data datasets/shapes/data.yaml --model yolov5n --imgsz 128 --batch-size 16 \
  --epochs "${EPOCHS}" --kd-loss yolo-kd --kd-alpha 0.5 --kd-temperature 2 \
  --project runs/demo --name student --exist-ok --seed 0

step "3/6 validate the student's best weights"
kd val --weights "${RUN}/weights/best.kdw" --data datasets/shapes/data.yaml --imgsz 128

step "4/6 export: fp32, fp16, int8 (calibrated), TensorRT calib caches + plans for the simulated fleet's TensorRT versions; each validated and timed"
# 8.2.1 (Jetson Nano, JetPack 4.6) and 8.6.2 (Orin, JetPack 6): what the simulated devices report. With a real
# fleet: --trt-versions "$(kd-fleet devices trt-versions --plain)" (docs/fleet.md).
kd export --weights "${RUN}/weights/best.kdw" --imgsz 128 --formats onnx,fp16,int8-dynamic,int8,trt \
  --trt-versions 8.2.1,8.6.2 --data datasets/shapes/data.yaml --calib-images 128 --out "${RUN}/export"

step "5/6 sign a model package and verify it"
[ -f runs/demo/keys/fleet.key ] || { mkdir -p runs/demo/keys && kd keys gen --out runs/demo/keys --name fleet; }
kd package --from "${RUN}/export" --name shapes --version 1.0.0 --sign runs/demo/keys/fleet.key \
  --val-data datasets/shapes/data.yaml --out runs/demo/packages/shapes-1.0.0
kd verify runs/demo/packages/shapes-1.0.0.tar --trust runs/demo/keys/fleet.pub

step "6/6 kd-fleet (embedded broker) + ${DEVICES:-6} simulated devices: roll the package out in waves gated on their benchmarks"
rm -rf runs/demo/fleet
node --conditions=source --import tsx examples/fleet-demo.ts --package runs/demo/packages/shapes-1.0.0.tar \
  --trust runs/demo/keys/fleet.pub --sign-key runs/demo/keys/fleet.key --devices "${DEVICES:-6}" --data runs/demo/fleet
step "done (npm run demo:fleet starts the fleet again and keeps the dashboard up)"
