"""Is netspec's output already simplifier-clean? Every zoo model (or the ones named) is compiled
as `netspec compile` writes it and run through onnxslim and onnx-simplifier (onnxsim); the
table gives the node counts before and after. Any difference is something netspec could have
emitted better.

    python3 -m venv /tmp/simplify && /tmp/simplify/bin/pip install onnxslim onnxsim '.[test]'
    /tmp/simplify/bin/python tools/check_simplifiers.py [zoo names...] [--markdown]

Exit code 1 when a simplifier removes or changes any node of any model.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from netspec.typed import bind

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def node_counts(model: object) -> Counter[str]:
    return Counter(node.op_type for node in model.graph.node)  # type: ignore[attr-defined]


def main() -> int:
    import onnxsim
    import onnxslim

    from netspec.compiler import compile_graph, load_graph
    from netspec.zoo import zoo_names

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="*", help="zoo model names (default: the whole zoo)")
    args = parser.parse_args()
    names = args.models or zoo_names()
    print("| model | nodes | after onnxslim | after onnxsim | ops changed | seconds |")
    print("|---|---:|---:|---:|---|---:|")
    changed = 0
    for name in names:
        started = time.perf_counter()
        model = compile_graph(bind(load_graph(name)))
        before = node_counts(model)
        slim = node_counts(onnxslim.slim(model))
        simplified, ok = onnxsim.simplify(model)
        sim = node_counts(simplified) if ok else Counter({"(onnxsim failed)": 0})
        differences = sorted({op for op in before | slim | sim if not before[op] == slim[op] == sim[op]})
        note = ", ".join(f"{op} {before[op]}→{slim[op]}/{sim[op]}" for op in differences) or "none"
        changed += bool(differences)
        total = sum(before.values())
        print(
            f"| {name} | {total} | {sum(slim.values())} | {sum(sim.values())} | {note} | "
            f"{time.perf_counter() - started:.1f} |",
            flush=True,
        )
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
