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


FAMILIES_PROBE = """
import contextlib, io, sys
from netspec import cli
with contextlib.redirect_stdout(io.StringIO()):
    assert cli.main(["report", sys.argv[1]]) == 0
print(",".join(sorted(m.rsplit(".", 1)[1] for m in sys.modules if m.startswith("netspec.layers."))))
from netspec.layers import LAYER_TYPES
assert "Convolution" in LAYER_TYPES and "Reshape" in LAYER_TYPES and "NoSuchLayer" not in LAYER_TYPES
assert "netspec.layers.transformer" not in sys.modules  # asking whether a type exists imports nothing
assert LAYER_TYPES["MultiheadAttention"].__module__ == "netspec.layers.transformer"
assert LAYER_TYPES.get("NoSuchLayer") is None
from netspec.layers.index import MODULE_OF_TYPE
assert list(LAYER_TYPES) == list(MODULE_OF_TYPE) and len(LAYER_TYPES) == len(MODULE_OF_TYPE) > 60
print(list(LAYER_TYPES)[:3])
"""


def test_a_report_imports_only_the_layer_families_its_spec_uses() -> None:
    """Each layer module's parameter classes cost start-up time (a frozen dataclass apiece), so
    LAYER_TYPES imports a family when one of its types is first looked up."""
    done = subprocess.run(
        [sys.executable, "-c", FAMILIES_PROBE, str(ROOT / "zoo" / "lenet5.net")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded, listing = done.stdout.splitlines()
    # LeNet-5: Input, Convolution, Pooling, InnerProduct, ReLU (the Reshape its InnerProduct
    # emits is a helper of base, not the shape family's).
    assert loaded == "activation,base,conv,index,io,linear,pool"
    # Iterating imports every family: all the types, in the layer reference's order.
    assert listing == "['ReLU', 'ReLU6', 'PReLU']"
