#!/usr/bin/env python3
"""Whole processes, timed in turns with their alternatives (DESIGN.md §9): `netspec report` and
`netspec compile` (random weights, to a file) against a torchinfo.summary process and a
`torch.onnx.export` process of the same torchvision model, and the floors of compiling VGG-16
(drawing its values at numpy's fastest rate; writing its bytes). Each round runs every command
once, the order reversed every other round, so background load hits all alike; medians of
``--rounds`` wall times and the largest peak RSS are reported, with ratios to the alternative.

    PYTHONPATH=. python tools/bench_startup.py                        # netspec only
    PYTHONPATH=. python tools/bench_startup.py --torch /work/torchvenv/bin/python --rounds 5
    PYTHONPATH=. python tools/bench_startup.py --zoo --rounds 3       # report of every zoo spec

``--baseline DIR`` runs each netspec command a second time from another checkout (``git worktree
add DIR COMMIT``), in the same turns, and gives after/before ratios. On a shared machine whose
speed drifts between runs, ``--zoo --instructions`` counts the instructions each report executes
instead (valgrind's callgrind, hash seed fixed: the same count on every run), a before/after
measure that no neighbour's load moves.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from netspec.compiler import load_graph
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


def timed(command: list[str], checkout: Path = ROOT) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one process, netspec imported from ``checkout``."""
    env = dict(os.environ, PYTHONPATH=str(checkout))
    # An installed package runs from its .pyc files (pip writes them): with PYTHONDONTWRITEBYTECODE
    # set, as some shells and containers do, every process would compile netspec's sources again
    # (0.13-0.19 s of a report) and the warm-up round below could not write them.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    started = time.perf_counter()
    # In the checkout's folder: ``python -m`` puts the current folder first on sys.path, ahead of
    # PYTHONPATH, so only there does the process import that checkout's netspec.
    process = subprocess.Popen(
        command, env=env, cwd=checkout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed: {process.stderr.read().decode()[-2000:]}")
    return elapsed, usage.ru_maxrss * 1024


def instructions(command: list[str], checkout: Path = ROOT) -> int:
    """Instructions one process executes, counted by valgrind's callgrind."""
    env = dict(os.environ, PYTHONPATH=str(checkout), PYTHONHASHSEED="0")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    timed(command, checkout)  # the .pyc files written before counting
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command],
        env=env,
        cwd=checkout,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode or found is None:
        raise SystemExit(f"valgrind {' '.join(command)} failed: {done.stderr[-2000:]}")
    return int(found.group(1))


def weight_count(spec: str) -> int:
    totals = bind(load_graph(ROOT / "zoo" / f"{spec}.net")).counts.totals
    return totals.params + totals.buffers


def in_turns(
    commands: dict[str, tuple[list[str], Path]], rounds: int
) -> tuple[dict[str, float], dict[str, int]]:
    """Median wall seconds and largest peak RSS of each command: a warm-up run (file cache and
    .pyc files), then ``rounds`` rounds of every command, the order reversed every other round."""
    for command, checkout in commands.values():
        timed(command, checkout)
    samples: dict[str, list[tuple[float, int]]] = {name: [] for name in commands}
    for index in range(rounds):
        order = list(commands) if index % 2 == 0 else list(reversed(commands))
        for name in order:
            samples[name].append(timed(*commands[name]))
    medians = {name: statistics.median(s for s, _ in runs) for name, runs in samples.items()}
    peaks = {name: max(rss for _, rss in runs) for name, runs in samples.items()}
    return medians, peaks


def zoo_reports(rounds: int, baseline: Path | None, count_instructions: bool, only: list[str]) -> int:
    """``netspec report`` of every zoo spec (or those in ``only``), slowest first (with
    --baseline: before, ratio), in seconds or, with ``count_instructions``, in millions of
    instructions."""
    py = sys.executable
    specs = sorted(s for s in (ROOT / "zoo").glob("*.net") if not only or s.stem in only)
    commands = {spec.stem: ([py, "-m", "netspec", "report", f"zoo/{spec.name}"], ROOT) for spec in specs}
    if baseline is not None:
        commands |= {f"before {name}": (argv, baseline) for name, (argv, _) in list(commands.items())}
    if count_instructions:
        figures = {name: instructions(*command) / 1e6 for name, command in commands.items()}
        unit, what = "M", "instructions (callgrind)"
    else:
        figures, _ = in_turns(commands, rounds)
        unit, what = "s", f"medians of {rounds} rounds in turns"
    print(f"netspec report of {len(specs)} zoo specs, {what}")
    for spec in sorted(specs, key=lambda s: -figures[s.stem]):
        layers = bind(load_graph(spec)).counts.totals.layers
        line = f"{spec.stem:32s} {layers:6d} layers {figures[spec.stem]:9.3f} {unit}"
        if baseline is not None:
            before = figures[f"before {spec.stem}"]
            line += f"   before {before:9.3f} {unit}   ratio {figures[spec.stem] / before:.2f}"
        print(line)
    if not count_instructions:
        slow = ", ".join(s.stem for s in specs if figures[s.stem] > 0.3) or "none"
        print(f"slowest {max(figures[s.stem] for s in specs):.3f} s; above 0.3 s: {slow}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--torch", metavar="PYTHON", help="a python with torch, torchvision, torchinfo")
    parser.add_argument("--model", default="resnet50", help="zoo/torchvision model for report/compile")
    parser.add_argument("--floor-model", default="vgg16", help="model for the I/O floors")
    parser.add_argument("--zoo", action="store_true", help="time the report of every zoo spec instead")
    parser.add_argument("--baseline", type=Path, metavar="DIR", help="also run netspec from this checkout")
    parser.add_argument("--instructions", action="store_true", help="with --zoo: count instructions")
    parser.add_argument("only", nargs="*", metavar="SPEC", help="with --zoo: only these zoo specs")
    args = parser.parse_args()
    if args.zoo:
        return zoo_reports(args.rounds, args.baseline, args.instructions, args.only)
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
    runs = {name: (command, ROOT) for name, command in commands.items()}
    if args.baseline is not None:
        runs |= {
            f"before {name}": (commands[name], args.baseline)
            for name in commands
            if name.startswith("netspec")
        }
    medians, peaks = in_turns(runs, args.rounds)
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
            ratio = f"{medians[name] / medians[other]:.3f}x {other}"
        elif name == f"netspec compile {args.floor_model}":
            ratio = f"{medians[name] / floor:.2f}x draw + write floors ({floor:.2f} s)"
        else:
            ratio = ""
        print(f"{name:32s} {medians[name]:9.3f} {peaks[name] / 2**20:9.0f}  {ratio}")
        if f"before {name}" in medians:
            before = medians[f"before {name}"]
            print(f"{'  before (--baseline)':32s} {before:9.3f} {peaks[f'before {name}'] / 2**20:9.0f}  "
                  f"after/before {medians[name] / before:.2f}")  # fmt: skip
    above = peaks[f"netspec compile {args.floor_model}"] - peaks["python + import onnx"]
    print(
        f"compile {args.floor_model} peak RSS above an interpreter with onnx: {above / 2**20:,.0f} MiB "
        f"= {above / (values * 4):.2f}x its weight bytes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
