#!/usr/bin/env python3
"""How much of each default limit (netspec.limits.Limits) the zoo and the Caffe test files use:
the largest use of each over all of them, and which file it is. docs/language.md quotes these
figures; rerun after adding a zoo model.

    python tools/limits_usage.py
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

from netspec.elaborate import _Context, _Elaborator, read_source
from netspec.limits import DEFAULT_INCLUDE_RULES, DEFAULT_LIMITS, count_tokens
from netspec.typed import bind

ROOT = Path(__file__).resolve().parent.parent


def spec_usage(path: Path) -> dict[str, int]:
    """What elaborating and analysing ``path`` (a .net spec) uses of each limit."""
    source = read_source(path)
    elaborator = _Elaborator(DEFAULT_LIMITS, DEFAULT_INCLUDE_RULES, path.parent)
    elaborator.run_file(source, _Context())
    graph = elaborator.graph(source)
    analysis = bind(graph)
    arrays = analysis.expected_arrays
    largest_tensor = max(
        [t.numel for t in analysis.types.values()] + [math.prod(a.spec.shape) for a in arrays.values()]
    )
    return {
        "max_layers": len(graph.nodes),
        "max_expansions": elaborator.expansions,
        "max_source_bytes": elaborator.source_bytes,
        "max_source_tokens": elaborator.source_tokens,
        "max_evaluation": elaborator.budget.used,
        "max_tensor_elements": largest_tensor,
        "max_weight_elements": sum(math.prod(a.spec.shape) for a in arrays.values()),
    }


def caffe_usage(path: Path) -> dict[str, int]:
    text = read_source(path).text
    return {"max_source_bytes": len(text), "max_source_tokens": count_tokens(text)}


def main() -> int:
    largest: dict[str, tuple[int, str]] = {}
    files = [(p, spec_usage) for p in sorted((ROOT / "zoo").glob("*.net"))]
    files += [(p, caffe_usage) for p in sorted((ROOT / "tests/data/caffe").glob("*.prototxt"))]
    for path, measure in files:
        for name, used in measure(path).items():
            if used > largest.get(name, (-1, ""))[0]:
                largest[name] = (used, path.name)
    for field in dataclasses.fields(DEFAULT_LIMITS):
        if field.name not in largest:
            continue
        used, where = largest[field.name]
        limit = getattr(DEFAULT_LIMITS, field.name)
        print(f"{field.name:22} {used:>14,} of {limit:>16,} ({100 * used / limit:6.2f}%)  {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
