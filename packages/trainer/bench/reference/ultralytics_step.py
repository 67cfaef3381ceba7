"""Times ultralytics YOLOv5 v7.0 training steps on the CPU, the reference for train-step.bench.ts.

A reference tool, never a dependency: run with Debian's python3-torch and the ultralytics v7.0
source tree (git archive v7.0 of github.com/ultralytics/yolov5):

    OMP_NUM_THREADS=2 /usr/bin/python3 ultralytics_step.py --yolov5 /path/to/yolov5 --imgsz 128 --batch 16 --threads 2

Same setting as the TypeScript bench: yolov5n (nc=6, scratch init), hyp.scratch-low.yaml, SGD
momentum 0.937 Nesterov, synthetic images and four boxes per image; one warm-up step, then the mean of
--steps steps of forward + ComputeLoss + backward + optimizer step. Prints one JSON line.
"""
import argparse
import json
import os
import sys
import time
import types


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('--yolov5', required=True, help='ultralytics YOLOv5 v7.0 source tree')
    ap.add_argument('--imgsz', type=int, default=128)
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--steps', type=int, default=4)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--nc', type=int, default=6)
    a = ap.parse_args()

    sys.path.insert(0, a.yolov5)
    # models/common.py imports IPython for notebook display only.
    ipy = types.ModuleType('IPython')
    ipy.display = types.ModuleType('IPython.display')
    ipy.display.display = print
    ipy.get_ipython = lambda: None
    sys.modules.setdefault('IPython', ipy)
    sys.modules.setdefault('IPython.display', ipy.display)

    import torch
    import yaml
    from models.yolo import Model
    from utils.loss import ComputeLoss

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    with open(os.path.join(a.yolov5, 'data/hyps/hyp.scratch-low.yaml')) as f:
        hyp = yaml.safe_load(f)
    model = Model(os.path.join(a.yolov5, 'models/yolov5n.yaml'), ch=3, nc=a.nc)
    nl = model.model[-1].nl
    # train.py scales the loss gains by layers, classes and image size.
    hyp['box'] *= 3 / nl
    hyp['cls'] *= a.nc / 80 * 3 / nl
    hyp['obj'] *= (a.imgsz / 640) ** 2 * 3 / nl
    model.hyp = hyp
    model.train()
    loss_fn = ComputeLoss(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.937, nesterov=True, weight_decay=0.0005)

    n = a.batch
    idx = torch.arange(n * a.imgsz * a.imgsz * 3, dtype=torch.float64)
    images = ((idx * 7919) % 255 / 255).float().reshape(n, a.imgsz, a.imgsz, 3).permute(0, 3, 1, 2).contiguous()
    rows = []
    for i in range(n):
        for k in range(4):
            rows.append([i, k % a.nc, 0.2 + 0.2 * k, 0.3 + 0.1 * k, 0.05 + 0.05 * k, 0.08 + 0.04 * k])
    targets = torch.tensor(rows, dtype=torch.float32)

    times = []
    for s in range(a.steps + 1):
        t0 = time.perf_counter()
        pred = model(images)
        loss, _ = loss_fn(pred, targets)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if s > 0:
            times.append(time.perf_counter() - t0)
    ms = 1000 * sum(times) / len(times)
    print(json.dumps({'ms': ms, 'imgs': n / (ms / 1000), 'imgsz': a.imgsz, 'batch': n, 'threads': a.threads,
                      'torch': torch.__version__, 'steps': len(times)}))


if __name__ == '__main__':
    main()
