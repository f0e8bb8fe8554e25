#!/usr/bin/env python3
"""Whole processes, timed in turns with their alternatives (DESIGN.md §9): `netspec report` and
`netspec compile` (random weights, to a file) against a torchinfo.summary process and a
`torch.onnx.export` process of the same torchvision model, and the floors of compiling VGG-16
(drawing its values at numpy's fastest rate; writing its bytes). Each round runs every command
once, the order reversed every other round, so background load hits all alike; medians of
``--rounds`` wall times and the largest peak RSS are reported, with ratios to the alternative.

    PYTHONPATH=. python tools/bench_startup.py                        # netspec only
    PYTHONPATH=. python tools/bench_startup.py --torch /work/torchvenv/bin/python --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from netspec.typed import bind

ROOT = Path(__file__).resolve().parent.parent

TORCH_EXPORT = """
import io, sys, torch, torchvision
model = getattr(torchvision.models, sys.argv[1])(weights=None).eval()
torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), sys.argv[2], opset_version=17, dynamo=False)
"""
TORCHINFO = """
import sys, torchvision, torchinfo
model = getattr(torchvision.models, sys.argv[1])(weights=None).eval()
torchinfo.summary(model, input_size=(1, 3, 224, 224), verbose=0)
"""
# The floors of compiling a model with random weights: drawing its float32 values (numpy's fastest
# generator and method) and writing that many bytes to a file, each in a bare process.
DRAW_FLOOR = """
import sys, numpy as np
rng = np.random.Generator(np.random.SFC64(0))
n, chunk = int(sys.argv[1]), 1 << 22
out = np.empty(chunk, np.float32)
for start in range(0, n, chunk):
    rng.random(min(chunk, n - start), dtype=np.float32, out=out[: min(chunk, n - start)])
"""
WRITE_FLOOR = """
import os, sys, numpy as np
n, chunk = int(sys.argv[1]), 1 << 22
block = np.zeros(chunk, np.float32)
with open(sys.argv[2], "wb") as f:
    for start in range(0, n, chunk):
        f.write(memoryview(block)[: min(chunk, n - start)])
    f.flush(); os.fsync(f.fileno())
"""


def timed(command: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one process."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    # An installed package runs from its .pyc files (pip writes them): with PYTHONDONTWRITEBYTECODE
    # set, as some shells and containers do, every process would compile netspec's sources again
    # (0.13-0.19 s of a report) and the warm-up round below could not write them.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed: {process.stderr.read().decode()[-2000:]}")
    return elapsed, usage.ru_maxrss * 1024


def weight_count(spec: str) -> int:
    from netspec.compiler import load_graph

    totals = bind(load_graph(ROOT / "zoo" / f"{spec}.net")).counts.totals
    return totals.params + totals.buffers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--torch", metavar="PYTHON", help="a python with torch, torchvision, torchinfo")
    parser.add_argument("--model", default="resnet50", help="zoo/torchvision model for report/compile")
    parser.add_argument("--floor-model", default="vgg16", help="model for the I/O floors")
    args = parser.parse_args()
    py = sys.executable
    folder = tempfile.mkdtemp(prefix="netspec-startup-")
    spec = f"zoo/{args.model}.net"
    values = weight_count(args.floor_model)
    commands = {
        "netspec report": [py, "-m", "netspec", "report", spec],
        "netspec compile": [py, "-m", "netspec", "compile", spec, "-o", f"{folder}/n.onnx"],
        f"netspec compile {args.floor_model}": [
            py, "-m", "netspec", "compile", f"zoo/{args.floor_model}.net", "-o", f"{folder}/f.onnx",
        ],
        "floor: draw values": [py, "-c", DRAW_FLOOR, str(values)],
        "floor: write bytes": [py, "-c", WRITE_FLOOR, str(values), f"{folder}/w.bin"],
        "python + import onnx": [py, "-c", "import onnx"],
        "python + import numpy": [py, "-c", "import numpy"],
    }  # fmt: skip
    if args.torch:
        commands["torchinfo.summary"] = [args.torch, "-c", TORCHINFO, args.model]
        commands["torch.onnx.export"] = [args.torch, "-c", TORCH_EXPORT, args.model, f"{folder}/t.onnx"]
    for command in commands.values():  # warm the file cache and the .pyc files
        timed(command)
    samples: dict[str, list[tuple[float, int]]] = {name: [] for name in commands}
    for index in range(args.rounds):
        order = list(commands) if index % 2 == 0 else list(reversed(commands))
        for name in order:
            samples[name].append(timed(commands[name]))
    medians = {name: statistics.median(s for s, _ in runs) for name, runs in samples.items()}
    peaks = {name: max(rss for _, rss in runs) for name, runs in samples.items()}
    size = f"{values:,} values ({values * 4 / 2**20:,.0f} MiB)"
    print(f"medians of {args.rounds} rounds in turns; {size} in {args.floor_model}")
    print(f"{'process':32s} {'median s':>9s} {'peak MiB':>9s}  ratio")
    alternative = {
        "netspec report": "torchinfo.summary",
        "netspec compile": "torch.onnx.export",
        f"netspec compile {args.floor_model}": None,
    }
    # Both floor processes start an interpreter and import numpy: count that once.
    floor = medians["floor: draw values"] + medians["floor: write bytes"] - medians["python + import numpy"]
    for name in commands:
        other = alternative.get(name)
        if other in medians:
            ratio = f"{medians[name] / medians[other]:.2f}x {other}"
        elif name == f"netspec compile {args.floor_model}":
            ratio = f"{medians[name] / floor:.2f}x draw + write floors ({floor:.2f} s)"
        else:
            ratio = ""
        print(f"{name:32s} {medians[name]:9.3f} {peaks[name] / 2**20:9.0f}  {ratio}")
    above = peaks[f"netspec compile {args.floor_model}"] - peaks["python + import onnx"]
    print(
        f"compile {args.floor_model} peak RSS above an interpreter with onnx: {above / 2**20:,.0f} MiB "
        f"= {above / (values * 4):.2f}x its weight bytes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
