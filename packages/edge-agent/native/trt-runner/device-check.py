#!/usr/bin/env python3
"""Device check of kd-trt-runner: speaks protocol v1 to a runner and runs one engine (python3 >= 3.6, stdlib only).

    python3 device-check.py --engine /tmp/model.engine [--iterations 50] -- ./kd-trt-runner [--shm-dir /dev/shm]

Starts the runner, checks hello, loads the engine, writes zeros to every input in a shared-memory file, runs the
inferences, prints the latency through the protocol and the first values of each output, checks that a region
outside the file is answered with OUT_OF_BOUNDS and the runner stays up, then shuts it down. Exit 0 when all of
that held. It also runs against the ONNX Runtime stand-in (give it an .onnx file), which is how it was tested.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import time

DTYPE_SIZE = {"float32": 4, "float16": 2, "int8": 1, "uint8": 1, "int32": 4, "int64": 8, "bool": 1}


class Runner:
    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.next_id = 1

    def _read(self, n):
        data = b""
        while len(data) < n:
            chunk = self.proc.stdout.read(n - len(data))
            if not chunk:
                raise RuntimeError("the runner closed its stdout (exit code %s)" % self.proc.poll())
            data += chunk
        return data

    def request(self, message):
        message = dict(message, id=self.next_id)
        self.next_id += 1
        body = json.dumps(message).encode("utf-8")
        self.proc.stdin.write(struct.pack("<I", len(body)) + body)
        self.proc.stdin.flush()
        while True:
            (length,) = struct.unpack("<I", self._read(4))
            reply = json.loads(self._read(length).decode("utf-8"))
            if reply.get("id") == message["id"]:
                return reply
            print("  (frame for another request: %s)" % reply)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", required=True, help="serialized engine (.onnx for the stand-in)")
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--shm-dir", default="/dev/shm", help="must equal the runner's --shm-dir")
    ap.add_argument("runner", nargs=argparse.REMAINDER, help="-- then the runner's argv")
    args = ap.parse_args()
    argv = args.runner[1:] if args.runner[:1] == ["--"] else args.runner
    if not argv:
        ap.error("give the runner's argv after --")

    runner = Runner(argv)
    shm_path = os.path.join(args.shm_dir, "kd-trt-check-%d" % os.getpid())
    ok = True
    try:
        hello = runner.request({"type": "hello", "versions": [1]})
        print("hello:", hello)
        if hello.get("type") != "hello" or hello.get("v") != 1:
            raise RuntimeError("unexpected hello answer")
        loaded = runner.request({"type": "load", "engine": "check", "path": os.path.abspath(args.engine)})
        if loaded.get("type") != "loaded":
            raise RuntimeError("load failed: %s" % loaded)
        print("inputs: ", loaded["inputs"])
        print("outputs:", loaded["outputs"])

        offset = 0
        inputs, outputs = [], []
        for t in loaded["inputs"] + loaded["outputs"]:
            n = DTYPE_SIZE[t["dtype"]]
            for d in t["shape"]:
                n *= d
            region = {"name": t["name"], "offset": offset, "bytes": n}
            if t in loaded["inputs"]:
                region["shape"] = t["shape"]
                inputs.append(region)
            else:
                outputs.append((region, t["dtype"]))
            offset = (offset + n + 63) // 64 * 64
        fd = os.open(shm_path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        os.ftruncate(fd, max(offset, 64))
        request = {"type": "infer", "engine": "check", "shm": shm_path, "inputs": inputs,
                   "outputs": [r for r, _ in outputs]}

        times = []
        for _ in range(args.iterations):
            t0 = time.perf_counter()
            result = runner.request(request)
            times.append((time.perf_counter() - t0) * 1000)
            if result.get("type") != "result":
                raise RuntimeError("infer failed: %s" % result)
        times.sort()
        print("latency through the protocol: median %.3f ms, p95 %.3f ms over %d runs (input: zeros)" % (
            times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.95))], len(times)))
        for region, dtype in outputs:
            os.lseek(fd, region["offset"], os.SEEK_SET)
            raw = os.read(fd, min(region["bytes"], 32))
            if dtype == "float32":
                print("  %s: first values %s" % (region["name"], list(struct.unpack("<%df" % (len(raw) // 4), raw))))

        bad = dict(request, outputs=[dict(outputs[0][0], offset=offset + 4096)])
        reply = runner.request(bad)
        print("out-of-bounds region answered:", reply.get("code"))
        ok = ok and reply.get("code") == "OUT_OF_BOUNDS"
        ok = ok and runner.request(request).get("type") == "result"
        print("still serving after the error:", ok)
        os.close(fd)
    except Exception as e:  # report and fail
        print("FAILED:", e, file=sys.stderr)
        ok = False
    finally:
        try:
            runner.request({"type": "shutdown"})
        except Exception:
            pass
        runner.proc.stdin.close()
        try:
            runner.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            runner.proc.kill()
        if os.path.exists(shm_path):
            os.unlink(shm_path)
    print("device check:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
