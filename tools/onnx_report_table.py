"""netspec report of torch-exported torchvision models beside the zoo spec's figures and
onnx-tool's profile of the same files, with the time each whole process took.

    /work/torchvenv/bin/python tools/export_torch_onnx.py --full /tmp/torchvision_onnx
    python tools/onnx_report_table.py /tmp/torchvision_onnx --onnx-tool-python VENV/bin/python

The torch exports have BatchNorm folded into the convolutions, so their params are the folded
network's: the zoo spec's params less BatchNorm's γ and β, plus a bias for each convolution that
gains one (netspec.passes.fold_batchnorm computes it). Run on a quiet machine for timings; they are medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ONNX_TOOL = """
import json, sys, onnx_tool
graph = onnx_tool.Model(sys.argv[1]).graph
graph.graph_reorder_nodes()
graph.shape_infer()
graph.profile()
print(json.dumps({"macs": int(round(graph.macs[0])), "params": int(graph.params)}))
"""


def timed(command: list[str], repeat: int) -> tuple[str, float]:
    times, out = [], ""
    for _ in range(repeat):
        start = time.perf_counter()
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        times.append(time.perf_counter() - start)
    return out, statistics.median(times)


def folded_params(spec: Path) -> int:
    from netspec.compiler import load_graph
    from netspec.passes.fold_batchnorm import fold_batchnorm
    from netspec.typed import bind
    from netspec.weights import InitialWeights

    typed = bind(load_graph(spec))
    return fold_batchnorm(typed, InitialWeights(typed, 0)).typed.counts.totals.params


def last_field(data: dict) -> str:
    fields = [layer["receptive_field"] for layer in data["layers"] if layer["receptive_field"]]
    return f"{fields[-1]['size'][0]}/{fields[-1]['stride'][0]}" if fields else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the folder of torch exports (NAME.onnx, NAME a zoo model)")
    parser.add_argument("--onnx-tool-python", help="a python with onnx-tool installed")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    netspec = [sys.executable, "-m", "netspec"]
    rows = []
    for path in sorted(args.folder.glob("*.onnx")):
        spec = ROOT / "zoo" / f"{path.stem}.net"
        ours, our_time = timed([*netspec, "report", str(path), "--format", "json"], args.repeat)
        got = json.loads(ours)
        want = json.loads(
            subprocess.run(
                [*netspec, "report", str(spec), "--format", "json"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        row = {
            "model": path.stem,
            "MB": path.stat().st_size / 1e6,
            "macs": got["totals"]["macs"],
            "spec_macs": want["totals"]["macs"],
            "params": got["totals"]["params"],
            "spec_folded_params": folded_params(spec),
            "spec_params": want["totals"]["params"],
            "output": got["outputs"][0]["shape"],
            "spec_output": want["outputs"][0]["shape"],
            "rf": last_field(got),
            "spec_rf": last_field(want),
            "netspec_s": our_time,
        }
        if args.onnx_tool_python:
            theirs, their_time = timed([args.onnx_tool_python, "-c", ONNX_TOOL, str(path)], args.repeat)
            profile = json.loads(theirs.strip().splitlines()[-1])
            row.update(
                onnx_tool_macs=profile["macs"], onnx_tool_params=profile["params"], onnx_tool_s=their_time
            )
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    header = (
        "| model | file MB | netspec MACs | spec MACs | netspec params | spec params folded (unfolded) "
        "| output = spec | last RF = spec | onnx-tool MACs (vs netspec) | onnx-tool params "
        "| netspec s | onnx-tool s |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for r in rows:
        tool_macs = r.get("onnx_tool_macs")
        tool = f"{tool_macs:,} ({(tool_macs / r['macs'] - 1) * 100:+.1f}%)" if tool_macs else "-"
        print(
            f"| {r['model']} | {r['MB']:.1f} | {r['macs']:,} | {r['spec_macs']:,} | {r['params']:,} "
            f"| {r['spec_folded_params']:,} ({r['spec_params']:,}) "
            f"| {'yes' if r['output'] == r['spec_output'] else 'NO'} "
            f"| {r['rf']} {'=' if r['rf'] == r['spec_rf'] else '≠ ' + r['spec_rf']} | {tool} "
            f"| {r.get('onnx_tool_params', 0):,} | {r['netspec_s']:.2f} | {r.get('onnx_tool_s', 0):.2f} |"
        )


if __name__ == "__main__":
    main()
