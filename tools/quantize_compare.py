"""onnxruntime's static quantiser on netspec's ONNX files and on torch's exports of the same
torchvision models, side by side: node counts by operator after ``quantize_static`` (QOperator
format, a small random calibration set). Float arithmetic left between quantised nodes in
netspec's file where torch's has none is something netspec emits that the quantiser does not
understand (three-term ``Sum`` is fine; a two-term one was not, hence ``Add``).

Needs torch and torchvision, which netspec does not (CPU wheels are enough):

    python3 -m venv /tmp/torch && /tmp/torch/bin/pip install torch torchvision onnx onnxruntime \\
        lark networkx safetensors tqdm
    /tmp/torch/bin/python tools/quantize_compare.py [resnet50 mobilenet_v2 googlenet]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def calibration(input_name: str, shape: tuple[int, ...], count: int = 8) -> object:
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.batches = iter(
                [{input_name: rng.standard_normal(shape, dtype=np.float32)} for _ in range(count)]
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    return Reader()


def quantized_ops(path: Path, input_name: str, shape: tuple[int, ...]) -> Counter[str]:
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = path.with_suffix(".pre.onnx")
    quant_pre_process(str(path), str(prepared))
    output = path.with_suffix(".int8.onnx")
    quantize_static(
        str(prepared),
        str(output),
        calibration(input_name, shape),
        quant_format=QuantFormat.QOperator,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return Counter(node.op_type for node in onnx.load(output).graph.node)


def torch_export(name: str, path: Path) -> None:
    import torch
    import torchvision

    options = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    model = getattr(torchvision.models, name)(weights=None, **options)
    model.eval()
    torch.onnx.export(model, torch.randn(1, 3, 224, 224), str(path), opset_version=17, dynamo=False)


def main() -> int:
    from netspec.cli import main as netspec

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="*", default=["resnet50", "mobilenet_v2", "googlenet"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for name in args.models:
            ours, theirs = folder / f"{name}.netspec.onnx", folder / f"{name}.torch.onnx"
            assert netspec(["compile", name, "-o", str(ours), "--quiet"]) == 0
            torch_export(name, theirs)
            counts = {
                "netspec": quantized_ops(ours, "data", (1, 3, 224, 224)),
                "torch": quantized_ops(theirs, _input_name(theirs), (1, 3, 224, 224)),
            }
            ops = sorted(set(counts["netspec"]) | set(counts["torch"]))
            print(f"\n{name} after quantize_static (QOperator):")
            print("| operator | netspec | torch.onnx.export |")
            print("|---|---:|---:|")
            for op in ops:
                print(f"| {op} | {counts['netspec'][op]} | {counts['torch'][op]} |")
            total = {k: sum(v.values()) for k, v in counts.items()}
            print(f"| all | {total['netspec']} | {total['torch']} |", flush=True)
    return 0


def _input_name(path: Path) -> str:
    import onnx

    model = onnx.load(path, load_external_data=False)
    stored = {t.name for t in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in stored)


if __name__ == "__main__":
    sys.exit(main())
