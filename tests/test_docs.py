"""Docs that run: every ``sh`` and ``python`` block of README.md and docs/*.md runs as written, in
a scratch folder holding a copy of docs/ and zoo/, with ``netspec`` on PATH. A block after
``<!-- not run: why -->`` is skipped (the reason is required); one after ``<!-- needs: NAME -->``
runs only where NAME is a program on PATH or an importable module."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNABLE = {"sh": ["bash", "-euo", "pipefail"], "python": [sys.executable]}
_FENCE = re.compile(r"^```(\S*)\s*$")
_MARK = re.compile(r"^<!--\s*(not run|needs):\s*(.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    document: Path
    line: int
    language: str
    text: str
    mark: tuple[str, str] | None

    @property
    def id(self) -> str:
        return f"{self.document.name}:{self.line}"


def blocks(document: Path) -> list[Block]:
    """The fenced blocks of ``document``, each with the marker comment right above it."""
    found = []
    lines = document.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        mark = _MARK.match(lines[index - 1]) if index else None
        body = "\n".join(lines[index + 1 : end]) + "\n"
        found.append(Block(document, index + 1, opening.group(1), body, mark.groups() if mark else None))
        index = end + 1
    return found


ALL_BLOCKS = [block for document in DOCUMENTS for block in blocks(document)]
RUN_BLOCKS = [block for block in ALL_BLOCKS if block.language in RUNNABLE]


@pytest.mark.unit
def test_every_mark_says_why_or_what() -> None:
    marked = [block for block in ALL_BLOCKS if block.mark is not None]
    assert marked and all(block.mark[1] for block in marked if block.mark is not None)
    # Shell sessions are ``console`` blocks (a prompt, then output), never ``sh``.
    assert not [block.id for block in RUN_BLOCKS if block.language == "sh" and "\n$ " in f"\n{block.text}"]


@pytest.mark.unit
def test_the_readme_example_is_the_example_file() -> None:
    example = (ROOT / "docs" / "examples" / "small_resnet.net").read_text()
    assert any(block.text == example for block in blocks(ROOT / "README.md") if block.language == "net")


def _available(name: str) -> bool:
    return shutil.which(name) is not None or importlib.util.find_spec(name) is not None


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with docs/ and zoo/ copied in and a ``netspec`` command first on PATH (this
    interpreter's, whether netspec is installed or run from the source tree)."""
    folder = tmp_path_factory.mktemp("docs")
    shutil.copytree(ROOT / "docs", folder / "docs")
    shutil.copytree(ROOT / "zoo", folder / "zoo")
    bin_folder = folder / ".bin"
    bin_folder.mkdir()
    command = bin_folder / "netspec"
    command.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m netspec "$@"\n')
    command.chmod(command.stat().st_mode | stat.S_IXUSR)
    return folder


@pytest.mark.ort
@pytest.mark.parametrize("block", RUN_BLOCKS, ids=[b.id for b in RUN_BLOCKS])
def test_block_runs_as_written(block: Block, scratch: Path) -> None:
    if block.mark is not None:
        kind, detail = block.mark
        if kind == "not run":
            pytest.skip(f"not run: {detail}")
        if not _available(detail):
            pytest.skip(f"needs {detail}")
    environment = {
        **os.environ,
        "PATH": f"{scratch / '.bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    result = subprocess.run(
        [*RUNNABLE[block.language], "-"],
        input=block.text,
        cwd=scratch,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{block.id} failed:\n{block.text}\n{result.stdout}\n{result.stderr}"
