"""What the report path loads: no numpy (netspec.lazy: layers import it on first use, and
analysis uses no array), no onnx (nor ml_dtypes, which onnx drags in), no onnxruntime, no parse
tables built at run time."""

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
heavy = sorted(m for m in ("numpy", "onnx", "onnxruntime", "ml_dtypes", "matplotlib") if m in sys.modules)
print(",".join(heavy))
"""


def test_report_imports_no_numpy_nor_onnx_and_builds_no_parse_tables() -> None:
    specs = [str(ROOT / "zoo" / "resnet50.net"), str(ROOT / "tests" / "data" / "caffe" / "lenet.prototxt")]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *specs], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_a_lazily_imported_module_is_the_module_on_first_use() -> None:
    probe = (
        "import sys\n"
        "from netspec.lazy import LazyModule\n"
        "lazy = LazyModule('fractions')\n"
        "assert 'fractions' not in sys.modules\n"
        "assert lazy.Fraction(1, 3) + lazy.Fraction(1, 6) == lazy.Fraction(1, 2)\n"
        "import fractions\n"
        "assert lazy.Fraction is fractions.Fraction and 'Fraction' in vars(lazy)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
