"""The form of the emitted graph where it matters to onnxruntime's speed (issue 17): the ops
torch's exporters would emit for the same layer, checked op by op."""

from __future__ import annotations

import pytest

from netspec.compiler import compile_graph
from netspec.diagnostics import SourceFile
from netspec.elaborate import elaborate
from netspec.typed import bind

pytestmark = pytest.mark.unit


def emitted_ops(body: str, shape: str = "[1, 4, 7, 7]") -> list[str]:
    graph = elaborate(SourceFile("t.net", f"input data: {shape}\n{body}\n"))
    return [node.op_type for node in compile_graph(bind(graph, batch=1)).graph.node]


@pytest.mark.parametrize(
    ("body", "ops"),
    [
        # torchvision's avgpool before the classifier: global, as torch exports it
        ("AdaptiveAvgPool p { output_size: 1 }", ["GlobalAveragePool"]),
        ("AdaptiveAvgPool p { output_size: 7 }", ["Identity"]),
        # Caffe's pool5 written as a window over the whole map
        ("Pooling p { pool: AVE  kernel_size: 7  stride: 1 }", ["GlobalAveragePool"]),
        ("Pooling p { pool: MAX  kernel_size: 7  stride: 2 }", ["GlobalMaxPool"]),
        ("Pooling p { pool: AVE  global_pooling: true }", ["GlobalAveragePool"]),
        # not global: padded, or a window smaller than the map
        ("Pooling p { pool: AVE  kernel_size: 7  pad: 1 }", ["AveragePool"]),
        ("Pooling p { pool: AVE  kernel_size: 3  stride: 2 }", ["AveragePool"]),
    ],
)
def test_pooling_emission(body: str, ops: list[str]) -> None:
    assert emitted_ops(body) == ops
