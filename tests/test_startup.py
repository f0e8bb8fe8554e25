"""What the report path loads: no onnx (nor ml_dtypes, which onnx drags in), no onnxruntime, no
parse tables built at run time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import contextlib, io, sys
from netspec import cli, parse_tables
def no_building(grammar):
    raise SystemExit(f"built the tables of {grammar} at run time")
parse_tables.build_parser = no_building
for spec in sys.argv[1:]:
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["report", spec]) == 0
heavy = sorted(m for m in ("onnx", "onnxruntime", "ml_dtypes", "matplotlib") if m in sys.modules)
print(",".join(heavy))
"""


def test_report_imports_no_onnx_and_builds_no_parse_tables() -> None:
    specs = [str(ROOT / "zoo" / "resnet50.net"), str(ROOT / "tests" / "data" / "caffe" / "lenet.prototxt")]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *specs], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
