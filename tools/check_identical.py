#!/usr/bin/env python3
"""Byte-identical outputs before and after a refactoring: the ONNX file and the text and JSON
reports of every zoo model and every Caffe file given, hashed.

    git worktree add ../before <commit>
    (cd ../before && PYTHONPATH=$PWD python ../main/tools/check_identical.py --record /tmp/before.json)
    PYTHONPATH=$PWD python tools/check_identical.py --check /tmp/before.json

Only the command line (``netspec.cli.main``) is used, so the same script measures any version.
Each model is compiled with the defaults (random weights of seed 0, BatchNorm folded) and with
``--keep-bn``; the reports are at batch 1. The ONNX files are hashed and deleted one by one (the
whole zoo is several GB). Exit 1 when ``--check`` finds a difference, listing each.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

# The checkout being measured is the current folder (run from its root), so that this one script
# measures an older checkout too; paths stay relative, as reports name them.
CAFFE = Path("..") / "shared" / "caffe"


def _sources(caffe_folder: Path) -> list[Path]:
    zoo = sorted(Path("zoo").glob("*.net"))
    caffe = sorted(caffe_folder.glob("*.prototxt")) if caffe_folder.is_dir() else []
    return zoo + caffe


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cli(arguments: list[str]) -> tuple[int, bytes]:
    from netspec.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(arguments)
    return code, (out.getvalue() + "\n--stderr--\n" + err.getvalue()).encode()


def outputs_of(source: Path, folder: Path) -> dict[str, str]:
    """The hashes of everything netspec makes of ``source`` (exit codes included)."""
    hashes = {}
    for kind, extra in (("onnx", []), ("onnx_keep_bn", ["--keep-bn"])):
        target = folder / "model.onnx"
        code, printed = _cli(["compile", str(source), "-o", str(target), *extra])
        hashes[kind] = f"exit {code} " + (
            _digest(target.read_bytes()) if target.exists() else _digest(printed)
        )
        target.unlink(missing_ok=True)
    for fmt in ("text", "json", "csv"):
        code, printed = _cli(["report", str(source), "--format", fmt])
        hashes[f"report_{fmt}"] = f"exit {code} {_digest(printed)}"
    return hashes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--record", metavar="FILE", help="write the hashes to FILE")
    action.add_argument("--check", metavar="FILE", help="compare with the hashes in FILE")
    parser.add_argument(
        "--caffe", type=Path, default=CAFFE, help="folder of Caffe files (default ../shared/caffe)"
    )
    parser.add_argument("only", nargs="*", help="names (file stems) to limit the run to")
    args = parser.parse_args()
    sources = [s for s in _sources(args.caffe) if not args.only or s.stem in args.only]
    started = time.perf_counter()
    found: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for source in sources:
            key = f"{source.parent.name}/{source.name}"
            found[key] = outputs_of(source, Path(folder))
            print(f"{key}: {found[key]['onnx'].split()[1]}", file=sys.stderr, flush=True)
    print(f"{len(found)} sources in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    if args.record:
        Path(args.record).write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
        return 0
    expected = json.loads(Path(args.check).read_text())
    differences = [
        f"{key} {kind}: {expected.get(key, {}).get(kind)} -> {value}"
        for key, hashes in found.items()
        for kind, value in hashes.items()
        if expected.get(key, {}).get(kind) != value
    ]
    missing = sorted(set(expected) - set(found)) if not args.only else []
    for line in differences + [f"{key}: not produced" for key in missing]:
        print(line)
    print(f"{len(found)} sources, {len(differences) + len(missing)} differences")
    return 1 if differences or missing else 0


if __name__ == "__main__":
    sys.exit(main())
