"""The model zoo shipped with netspec: where its specs are, how a zoo model's name on the command
line becomes its spec file, and the catalogue of what each model is and where its figures come
from (``zoo/catalog.json``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

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
class ImageNetAccuracy:
    """A published ImageNet-1k validation result: top-1 and top-5 accuracy in percent (top-5
    None where the source gives only top-1), where it is published (``source``: the weights'
    name in torchvision's metadata, or the paper and its table) and how the images were fed
    (``evaluation``: resolution and crop)."""

    top1: float
    top5: float | None
    source: str
    evaluation: str


@dataclass(frozen=True)
class PublishedMetric:
    """A dense-prediction model's own published result (mean IoU on PASCAL VOC, ...):
    ``value`` in percent of ``name`` on ``dataset``, from ``source``."""

    name: str
    value: float
    dataset: str
    source: str


@dataclass(frozen=True)
class ZooEntry:
    """What the catalogue says of one zoo model: its family, where its counts come from, and
    its published accuracy — ImageNet top-1/top-5 for a classifier, another metric for a
    dense-prediction model — or None where none is published (never an estimate)."""

    name: str
    family: str
    counts_source: str
    imagenet: ImageNetAccuracy | None = None
    metric: PublishedMetric | None = None

    @property
    def path(self) -> Path:
        return zoo_folder() / f"{self.name}{SPEC_SUFFIX}"


@cache
def catalog() -> dict[str, ZooEntry]:
    """The catalogue by model name, in name order."""
    with open(zoo_folder() / "catalog.json", encoding="utf-8") as handle:
        models = json.load(handle)["models"]
    return {name: _entry(name, fields) for name, fields in sorted(models.items())}


def _entry(name: str, fields: dict[str, Any]) -> ZooEntry:
    imagenet = fields.get("imagenet")
    metric = fields.get("metric")
    return ZooEntry(
        name,
        fields["family"],
        fields["counts_source"],
        None
        if imagenet is None
        else ImageNetAccuracy(
            imagenet["top1"], imagenet.get("top5"), imagenet["source"], imagenet["evaluation"]
        ),
        None
        if metric is None
        else PublishedMetric(metric["name"], metric["value"], metric["dataset"], metric["source"]),
    )


def catalogued(source: str) -> ZooEntry | None:
    """The catalogue's entry of the model a SPEC argument names: a zoo model's name, or a spec
    file whose text is that of the zoo spec of its name (the zoo's own file, or a copy of it,
    as in a checkout beside an installed package); None for any other spec, a changed copy
    included (its published figures would not be its own)."""
    path = Path(source)
    if not path.exists():
        found = zoo_spec(source)
        return None if found is None else catalog().get(found.stem)
    if path.suffix != SPEC_SUFFIX or not path.is_file():
        return None
    try:
        return catalogued_text(path.name, path.read_bytes())
    except OSError:
        return None


def catalogued_text(filename: str, text: bytes | str) -> ZooEntry | None:
    """The catalogue's entry of the zoo model ``filename`` (``resnet50.net``) when ``text`` is
    exactly that zoo spec's text; None otherwise (another file, or the zoo model changed)."""
    zoo_file = zoo_spec(filename)
    if zoo_file is None:
        return None
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        same = data == zoo_file.read_bytes()
    except OSError:
        return None
    return catalog().get(zoo_file.stem) if same else None
