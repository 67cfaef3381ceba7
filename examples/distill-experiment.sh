#!/usr/bin/env bash
# The distillation experiment of docs/results.md: a yolov5s teacher trained and exported by kd-trainer
# teaches a yolov5n student on the synthetic shapes set; baseline and distilled students with the same
# seed, data and schedule, two seeds each. Runs that already finished are skipped, so it can be resumed.
# Everything goes under ${OUT:-runs/distill-exp}. About 3 hours on two CPU cores.
# The easy testbed of docs/results.md (issue 15) with a teacher of your own (an ONNX export or .kdw):
#   DATA=datasets/easy2k/data.yaml SYNTH_ARGS="--difficulty easy --train 2000 --val 256 --imgsz 128 --classes 6 --seed 0" \
#   TEACHER=yolov5s-easy2k.onnx EPOCHS=30 SEEDS="0 1 2" bash examples/distill-experiment.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/distill-exp}"
EPOCHS="${EPOCHS:-20}"
TEACHER_EPOCHS="${TEACHER_EPOCHS:-30}"
SEEDS="${SEEDS:-0 1}"
KD_FLAGS="${KD_FLAGS:---kd-loss yolo-kd --kd-alpha 0.5 --kd-temperature 2}"
kd() { node --conditions=source --import tsx packages/trainer/src/bin/kd-trainer.ts "$@"; }
DATA="${DATA:-datasets/shapes/data.yaml}"
SYNTH_ARGS="${SYNTH_ARGS:---train 512 --val 128 --imgsz 128 --classes 6 --seed 0}"
# shellcheck disable=SC2086
[ -f "${DATA}" ] || kd data synth --out "$(dirname "${DATA}")" ${SYNTH_ARGS}

TEACHER="${TEACHER:-${OUT}/teacher/weights/best.kdw}"
if [ ! -f "${TEACHER}" ]; then
  kd train --data "${DATA}" --model yolov5s --imgsz 128 --batch-size 16 --epochs "${TEACHER_EPOCHS}" --seed 0 --project "${OUT}" --name teacher --exist-ok
fi
TEACHER_ONNX="${OUT}/teacher.onnx"
case "${TEACHER}" in *.onnx) TEACHER_ONNX="${TEACHER}" ;; esac
if [ ! -f "${TEACHER_ONNX}" ]; then
  kd export --weights "${TEACHER}" --imgsz 128 --batch-size 16 --formats onnx --data "${DATA}" --out "${OUT}/teacher-export"
  cp "${OUT}/teacher-export/model.onnx" "${TEACHER_ONNX}"
fi

for seed in ${SEEDS}; do
  # results.png is written when a run ends (best.kdw exists from its first epoch on).
  [ -f "${OUT}/baseline-s${seed}/results.png" ] || kd train --data "${DATA}" --model yolov5n --imgsz 128 --batch-size 16 \
    --epochs "${EPOCHS}" --seed "${seed}" --project "${OUT}" --name "baseline-s${seed}" --exist-ok
  # shellcheck disable=SC2086
  [ -f "${OUT}/kd-s${seed}/results.png" ] || kd distill --teacher "${TEACHER_ONNX}" ${KD_FLAGS} --data "${DATA}" --model yolov5n \
    --imgsz 128 --batch-size 16 --epochs "${EPOCHS}" --seed "${seed}" --project "${OUT}" --name "kd-s${seed}" --exist-ok
done
for w in "${TEACHER}" "${OUT}"/baseline-s*/weights/best.kdw "${OUT}"/kd-s*/weights/best.kdw; do
  echo "== ${w}"
  kd val --weights "${w}" --data "${DATA}" --imgsz 128 --json 2>/dev/null | node -e \
    'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);console.log(`mAP50 ${r.map50.toFixed(3)}  mAP50-95 ${r.map.toFixed(3)}`)})'
done
