#!/usr/bin/env python3
"""zoo/catalog.json's torchvision accuracies against torchvision's own weights metadata (needs
torchvision; never a dependency of netspec or its tests).

Every catalogue figure whose source names torchvision weights (``torchvision
ResNet50_Weights.IMAGENET1K_V1 ...``) is checked: top-1 and top-5 are the weights'
``meta["_metrics"]["ImageNet-1K"]`` acc@1 and acc@5, and the evaluation names the weights'
resize and centre-crop sizes. ``--entry MODEL...`` prints the catalogue's ``imagenet`` entry for
torchvision models (their IMAGENET1K_V1 weights), in the catalogue's wording, to paste into
zoo/catalog.json when a model joins the zoo.

    /work/torchvenv/bin/python tools/torchvision_accuracy.py           # check the catalogue
    /work/torchvenv/bin/python tools/torchvision_accuracy.py --entry convnext_tiny swin_t
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOURCE = re.compile(r"^torchvision (\w+)\.(\w+) ")


def entry(weights: Any) -> dict[str, Any]:
    """The catalogue's ``imagenet`` entry of a torchvision weights enum member."""
    metrics = weights.meta["_metrics"]["ImageNet-1K"]
    transforms = weights.transforms()
    crop, resize = transforms.crop_size[0], transforms.resize_size[0]
    return {
        "top1": metrics["acc@1"],
        "top5": metrics["acc@5"],
        "source": f"torchvision {type(weights).__name__}.{weights.name} "
        "(weights metadata: ImageNet-1K acc@1, acc@5)",
        "evaluation": f"ImageNet-1k validation; resize {resize}, centre crop {crop}x{crop}",
    }


def check() -> int:
    import torchvision.models as models

    with open(ROOT / "zoo" / "catalog.json", encoding="utf-8") as handle:
        catalogue = json.load(handle)["models"]
    failures = checked = 0
    for name, fields in sorted(catalogue.items()):
        published = fields.get("imagenet")
        match = SOURCE.match(published["source"]) if published else None
        if match is None:
            continue
        weights = getattr(getattr(models, match.group(1)), match.group(2))
        expected = entry(weights)
        checked += 1
        if published != expected:
            failures += 1
            print(f"{name}: catalogue {published}\n  torchvision {expected}")
    print(f"{checked} torchvision figures checked, {failures} differ")
    return 1 if failures else 0


def print_entries(names: list[str]) -> int:
    from torchvision.models import get_model_weights

    entries = {name: entry(get_model_weights(name).IMAGENET1K_V1) for name in names}
    print(json.dumps(entries, indent=1, ensure_ascii=False))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--entry", nargs="+", metavar="MODEL", help="print catalogue entries for these models"
    )
    args = parser.parse_args()
    return print_entries(args.entry) if args.entry else check()


if __name__ == "__main__":
    sys.exit(main())
