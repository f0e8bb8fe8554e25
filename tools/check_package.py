"""The package as a new user and a distribution packager get it, outside this checkout:

1. build the wheel and the sdist (``python -m build``);
2. install the wheel in a fresh venv, and from an empty folder run
   ``netspec compile resnet50 -o r.onnx && netspec run r.onnx`` and ``netspec zoo``;
3. unpack the sdist, install it with its test extras in another fresh venv and run its own test
   suite there (``--quick``: only ``-m unit``).

    python tools/check_package.py [--quick] [--keep]

Needs network access to PyPI (or a local index) for the venvs' dependencies. Prints each step
with its time; exit code 1 on the first failure.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def step(title: str, command: list[str], cwd: Path) -> None:
    started = time.perf_counter()
    print(f"$ {' '.join(command)}   (in {cwd})", flush=True)
    result = subprocess.run(command, cwd=cwd)
    print(f"  {title}: exit {result.returncode} in {time.perf_counter() - started:.1f} s", flush=True)
    if result.returncode != 0:
        raise SystemExit(1)


def venv(folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    return folder / "bin"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="run only the sdist's unit tests")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="netspec-package-"))
    try:
        dist = scratch / "dist"
        step("build", [sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], scratch)
        (wheel,) = dist.glob("*.whl")
        (sdist,) = dist.glob("*.tar.gz")

        user = venv(scratch / "user-venv")
        step("install the wheel", [str(user / "pip"), "install", "--quiet", str(wheel)], scratch)
        empty = scratch / "empty"
        empty.mkdir()
        step("compile a zoo model", [str(user / "netspec"), "compile", "resnet50", "-o", "r.onnx"], empty)
        step("run it", [str(user / "netspec"), "run", "r.onnx"], empty)
        step("list the zoo", [str(user / "netspec"), "zoo"], empty)

        with tarfile.open(sdist) as archive:
            archive.extractall(scratch / "sdist", filter="data")
        (source,) = (scratch / "sdist").iterdir()
        packager = venv(scratch / "sdist-venv")
        step("install the sdist with tests", [str(packager / "pip"), "install", "--quiet", ".[test]"], source)
        tests = [str(packager / "pytest"), "-q", "-p", "no:cacheprovider"]
        step("the sdist's tests", [*tests, "-m", "unit"] if args.quick else tests, source)
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
