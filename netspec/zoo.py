"""The model zoo shipped with netspec: where its specs are, how a zoo model's name on the command
line becomes its spec file, and the catalogue of what each model is and where its figures come
from (``zoo/catalog.json``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
SPEC_SUFFIX = ".net"


@cache
def zoo_folder() -> Path:
    """The zoo's folder: ``netspec/zoo_specs`` in an installed package (the wheel carries the
    repository's top-level ``zoo/`` there), else ``zoo/`` beside the package in a source tree."""
    for folder in (_PACKAGE / "zoo_specs", _PACKAGE.parent / "zoo"):
        if (folder / "catalog.json").is_file():
            return folder
    raise FileNotFoundError(f"netspec's zoo is missing: no catalog.json in {_PACKAGE / 'zoo_specs'}")


def zoo_names() -> list[str]:
    """Every zoo model's name (its spec file's stem), sorted."""
    return sorted(path.stem for path in zoo_folder().glob(f"*{SPEC_SUFFIX}"))


def zoo_spec(name: str) -> Path | None:
    """The spec file of the zoo model ``name`` (``resnet50`` or ``resnet50.net``), or None when
    the zoo has no model of that name."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    stem = name[: -len(SPEC_SUFFIX)] if name.endswith(SPEC_SUFFIX) else name
    path = zoo_folder() / f"{stem}{SPEC_SUFFIX}"
    return path if path.is_file() else None


def resolve_spec(argument: str) -> str:
    """The file a SPEC argument names: an existing path always wins, then a zoo model's name;
    anything else is returned as it is, for the reader to report as missing."""
    if Path(argument).exists():
        return argument
    found = zoo_spec(argument)
    return str(found) if found is not None else argument


@dataclass(frozen=True)
class ZooEntry:
    """What the catalogue says of one zoo model."""

    name: str
    family: str
    counts_source: str

    @property
    def path(self) -> Path:
        return zoo_folder() / f"{self.name}{SPEC_SUFFIX}"


@cache
def catalog() -> dict[str, ZooEntry]:
    """The catalogue by model name, in name order."""
    with open(zoo_folder() / "catalog.json", encoding="utf-8") as handle:
        models = json.load(handle)["models"]
    return {
        name: ZooEntry(name, entry["family"], entry["counts_source"])
        for name, entry in sorted(models.items())
    }
