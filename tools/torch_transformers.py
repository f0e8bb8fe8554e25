#!/usr/bin/env python3
"""The transformer-era zoo models against torchvision (issue 15): for ConvNeXt-T, ViT-B/16 and
Swin-T (or the models named with --models), build torchvision's model with random weights — every
LayerNorm, BatchNorm, layer-scale, class-token and position-embedding value randomised too, so
that no block reduces to the identity — save its state_dict as .safetensors under /tmp, compile
netspec's zoo spec with that file (loaded by name), and compare the onnxruntime output with
torch eager (max |ort − torch| / max |torch|, the bound is 1e-4).

With --bench, the onnxruntime CPU latency of netspec's graph against torch.onnx.export of the
same model with the same weights and session options, in paired runs (tools/bench_graph_vs_torch.py's
sessions and pairing: no spinning threads, the order alternating): the ratio of minima and the
median of per-round ratios. bench_graph_vs_torch.py itself times these models with torchvision's
initial weights, beside the other torchvision models.

torch and torchvision are not netspec dependencies; use a separate environment:

    /work/torchvenv/bin/python tools/torch_transformers.py [--models convnext_tiny vit_b_16 swin_t]
        [--bench] [--rounds 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/ is not a package
from bench_graph_vs_torch import paired, randomise, session, torch_export
from bench_vs_torch import import_torchvision

from netspec.compiler import compile_graph, load_graph
from netspec.runtime import create_session
from netspec.typed import bind
from netspec.weightfile import load_weights

ROOT = Path(__file__).resolve().parent.parent


def prepare(name: str, seed: int = 0) -> tuple[object, Path]:
    """The torchvision model in eval mode with random weights, and its state_dict saved."""
    from safetensors.torch import save_file

    torchvision = import_torchvision()
    model = getattr(torchvision.models, name)(weights=None).eval()
    randomise(model, seed)
    path = Path("/tmp") / f"netspec_{name}.safetensors"
    state = {
        k: v.contiguous() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")
    }
    save_file(state, str(path))
    return model, path


def netspec_model(name: str, weights: Path) -> tuple[bytes, tuple[int, ...]]:
    """The compiled zoo spec with the weights file, and its input shape at batch 1."""

    graph = load_graph(ROOT / "zoo" / f"{name}.net")
    typed = bind(graph, 1)
    shape = typed.types[graph.input_nodes[0].outputs[0]].static_dims
    return compile_graph(typed, load_weights(str(weights), typed)).SerializeToString(), shape


def run(model: bytes, x: np.ndarray, threads: int | None) -> np.ndarray:
    session = create_session(model, "cpu", threads)
    (input_name,) = session.input_names
    (output,) = session.run({input_name: x}).values()
    return output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["convnext_tiny", "vit_b_16", "swin_t"])
    parser.add_argument("--bench", action="store_true", help="also the paired latency benchmark")
    parser.add_argument("--rounds", type=int, default=20, help="paired rounds of the benchmark")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    parser.add_argument(
        "--dynamo", action="store_true", help="torch's dynamo exporter (default: TorchScript)"
    )
    args = parser.parse_args()
    import torch

    torchvision = import_torchvision()
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, batch 1, each spec's input")
    worst = 0.0
    for name in args.models:
        model, path = prepare(name)
        ours, shape = netspec_model(name, path)
        x = np.random.default_rng(1).standard_normal(shape, dtype=np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy().astype(np.float64)
        got = run(ours, x, args.threads)
        error = float(np.abs(got - expected).max() / np.abs(expected).max())
        worst = max(worst, error)
        print(
            f"{name:18s} {'x'.join(map(str, shape[2:]))}  weights {path}\n{'':18s} "
            f"max |ort − torch| / max |torch| = {error:.2e}"
            f"  (output std {expected.std():.3g})"
        )
        if not args.bench:
            continue
        import torch

        exported = torch_export(model, torch.from_numpy(x), args.dynamo)
        theirs = run(exported, x, args.threads)
        error = float(np.abs(theirs - expected).max() / np.abs(expected).max())
        print(f"{'':18s} torch.onnx.export output vs torch: {error:.2e}")
        threads = args.threads or 2
        ours_session, theirs_session = session(ours, threads), session(exported, threads)
        feeds = ({ours_session.get_inputs()[0].name: x}, {theirs_session.get_inputs()[0].name: x})
        minima, median = paired(ours_session, theirs_session, feeds, args.rounds)
        print(
            f"{'':18s} ratio of minima {minima:.3f}, median of paired ratios {median:.3f} (netspec / torch)"
        )
    return 0 if worst <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
