#!/usr/bin/env bash
# On-device adaptation end to end (issue 16, docs/adaptation.md): make a domain-shift scenario with the synthetic
# shapes (domain a: the workstation's pictures; domain b: another site's camera), train a yolov5n student on a and a
# teacher that also saw labelled b, package both signed with a demo fleet key, then start kd-fleet (embedded broker)
# and a real kd-agent that serves b frames and captures them, and let the device adapt its student through the
# fleet's API (examples/adapt-demo.ts). It ends with the before/after table, measured on a labelled b set the device
# never saw. Everything stays under runs/demo-adapt; a step whose output is there already is not run again
# (rm -rf runs/demo-adapt starts over).
#
# Sizes (environment): STUDENT_EPOCHS (12), TEACHER_EPOCHS (5), ADAPT_EPOCHS (5), FRAMES (160: frames the device
# captures and adapts on), TRAIN_IMAGES (512 domain-a training images), REPLAY (256 domain-a images with their labels, shipped in the
# package for the job to replay), ADAPT_LR0 (0.001), PSEUDO_CONF (0.1: this short-trained teacher is rarely more
# confident than 0.3, which left 17 boxes on 158 frames), MAX_LOSS (0.02).
set -euo pipefail
cd "$(dirname "$0")/.."
STUDENT_EPOCHS="${STUDENT_EPOCHS:-12}"
TEACHER_EPOCHS="${TEACHER_EPOCHS:-5}"
ADAPT_EPOCHS="${ADAPT_EPOCHS:-5}"
FRAMES="${FRAMES:-160}"
TRAIN_IMAGES="${TRAIN_IMAGES:-512}"
REPLAY="${REPLAY:-256}"
R=runs/demo-adapt
D="$R/data"
kd() { node --conditions=source --import tsx packages/trainer/src/bin/kd-trainer.ts "$@"; }
START=$(date +%s)
step() { echo; echo "== [$(( $(date +%s) - START )) s] $*"; }
have() { [ -f "$1" ] && echo "   (kept from an earlier run: $1)"; }

step "1/5 data: domain a (the student's), labelled b (the teacher's), b frames for the device's camera, a labelled b hold-out"
have "$D/a/data.yaml" || kd data synth --out "$D/a" --difficulty easy --train "${TRAIN_IMAGES}" --val 64 --imgsz 128 --classes 6 --seed 0
have "$D/b-train/data.yaml" || kd data synth --out "$D/b-train" --difficulty easy --domain b --train 256 --val 32 --imgsz 128 --classes 6 --seed 1
have "$D/b-camera/data.yaml" || kd data synth --out "$D/b-camera" --difficulty easy --domain b --train "${FRAMES}" --val 1 --imgsz 128 --classes 6 --seed 2
have "$D/b-holdout/data.yaml" || kd data synth --out "$D/b-holdout" --difficulty easy --domain b --train 1 --val 128 --imgsz 128 --classes 6 --seed 3
# The package's own val/ (the forgetting check the device runs): 64 more domain-a images, apart from a's val split, so
# the "a val" column below stays a set the device never saw. 16 images were too few: one image moved the check by ~0.03.
have "$D/a-check/data.yaml" || kd data synth --out "$D/a-check" --difficulty easy --train 1 --val 64 --imgsz 128 --classes 6 --seed 4
# The teacher trains on labelled a and b together (a data YAML's train and val may each list folders).
cat > "$D/ab.yaml" <<EOF
# domain a and domain b together, for the teacher (written by examples/adapt-demo.sh)
path: .
train: [a/images/train, b-train/images/train]
val: [a/images/val, b-train/images/val]
nc: 6
names: [circle, square, triangle, star, cross, ring]
EOF
# What the student's package is built from: a's training split (replay images are sampled from it) and a-check's val.
cat > "$D/a-package.yaml" <<EOF
# domain a's training images and the package's val/ images (written by examples/adapt-demo.sh)
path: .
train: a/images/train
val: a-check/images/val
nc: 6
names: [circle, square, triangle, star, cross, ring]
EOF
# A short run needs its updates: no gradient accumulation (nbs = the batch: 32 updates an epoch over 512 images, not 8)
# and no warm-up (its 100-step floor would be three of the epochs).
printf '# written by examples/adapt-demo.sh: a short training from scratch\nwarmup_epochs: 0\n' > "$R/hyp.yaml"

step "2/5 student: yolov5n trained on domain a only, ${STUDENT_EPOCHS} epochs at 128 px"
have "$R/runs/student/weights/best.kdw" || kd train --data "$D/a/data.yaml" --model yolov5n --imgsz 128 --batch-size 16 \
  --nbs 16 --hyp "$R/hyp.yaml" --epochs "${STUDENT_EPOCHS}" --seed 0 --project "$R/runs" --name student --exist-ok

step "3/5 teacher: the student fine-tuned on labelled a + b, ${TEACHER_EPOCHS} epochs (a stand-in for a larger teacher, to keep the demo short)"
have "$R/runs/teacher/weights/best.kdw" || kd train --data "$D/ab.yaml" --model yolov5n --weights "$R/runs/student/weights/best.kdw" \
  --noautoanchor --imgsz 128 --batch-size 16 --nbs 16 --hyp "$R/hyp.yaml" --epochs "${TEACHER_EPOCHS}" --seed 0 --project "$R/runs" --name teacher --exist-ok

step "4/5 export and sign: the student's package (with its .kdw, val/ of domain a and ${REPLAY} replay images), the teacher's package"
[ -f "$R/keys/fleet.key" ] || { mkdir -p "$R/keys" && kd keys gen --out "$R/keys" --name fleet; }
have "$R/packages/shapes-1.0.0.tar" || {
  kd export --weights "$R/runs/student/weights/best.kdw" --imgsz 128 --formats onnx --out "$R/runs/student/export"
  kd package --from "$R/runs/student/export" --name shapes --version 1.0.0 --sign "$R/keys/fleet.key" \
    --weights-file "$R/runs/student/weights/best.kdw" --val-data "$D/a-package.yaml" --val-images 64 --replay-images "${REPLAY}" \
    --out "$R/packages/shapes-1.0.0"
}
have "$R/packages/shapes-teacher-1.0.0.tar" || {
  kd export --weights "$R/runs/teacher/weights/best.kdw" --imgsz 128 --formats onnx --out "$R/runs/teacher/export"
  kd package --from "$R/runs/teacher/export" --name shapes-teacher --version 1.0.0 --sign "$R/keys/fleet.key" --role teacher \
    --out "$R/packages/shapes-teacher-1.0.0"
}

step "5/5 kd-fleet (embedded broker) + a real kd-agent serving domain-b frames: roll out, push the teacher, adapt, compare"
rm -rf "$R/fleet"
node --conditions=source --import tsx examples/adapt-demo.ts --root "$R" --epochs "${ADAPT_EPOCHS}" --frames "${FRAMES}" \
  --lr0 "${ADAPT_LR0:-0.001}" --pseudo-conf "${PSEUDO_CONF:-0.1}" --max-loss "${MAX_LOSS:-0.02}"
step "done"
