"""Caps on what a spec may ask for, so that no input can exhaust time or memory, and the rules
for which files an ``include`` may read. Both can be relaxed on the command line
(``--limit NAME=VALUE``, ``--include-path DIR``, ``--allow-any-include``; docs/language.md),
except the few fixed caps below Limits."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from netspec.diagnostics import did_you_mean, error


@dataclass(frozen=True)
class Limits:
    """Caps on expansion and on sizes: layers in the network, nested template instances, one
    loop's iterations, loop iterations and template instances together, nested include files,
    the bytes and the tokens of spec text read (the file and its includes together; parsing
    costs by the token, and a list literal packs one into every two bytes), the evaluation budget
    (expression steps plus list items and string characters created or compared, in all),
    elements per tensor (activations and each stored weight array) and weight elements in all.
    Together the defaults keep the elaboration of any input to a few seconds of CPU time and
    well under a gigabyte (docs/language.md lists what the zoo uses of each); the tensor cap
    stops shapes that could never be allocated before anything is, and the weight cap (2**29
    elements: 2 GiB of float32) a spec of a few lines asking for far more than any real net."""

    max_layers: int = 50_000
    max_template_depth: int = 64
    max_repeat: int = 100_000
    max_expansions: int = 200_000
    max_include_depth: int = 32
    max_source_bytes: int = 2**20
    max_source_tokens: int = 100_000
    max_evaluation: int = 10_000_000
    max_tensor_elements: int = 2**34
    max_weight_elements: int = 2**29

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def with_settings(self, settings: Mapping[str, int]) -> Limits:
        """These limits with some replaced by name (raises a NetspecError for an unknown name)."""
        for name in settings:
            if name not in self.names():
                hint = did_you_mean(name, self.names())
                raise error(
                    f"'{name}' is not a limit; limits: {', '.join(self.names())}"
                    + (f" ({hint})" if hint else "")
                )
        return dataclasses.replace(self, **settings)


DEFAULT_LIMITS = Limits()

# Tokens as the parsers see them, near enough: names and numbers, strings, comments, one-character
# symbols. Counting them is one regex pass, far cheaper than parsing.
_TOKEN = re.compile(r"[A-Za-z0-9_.]+|\"[^\"\n]*\"|'[^'\n]*'|#[^\n]*|\S")


def count_tokens(text: str) -> int:
    """About how many tokens ``text`` holds (what Limits.max_source_tokens counts)."""
    return sum(1 for _ in _TOKEN.finditer(text))


# Fixed caps, not Limits: raising them could crash the interpreter, and no real spec comes near.
# How deep brackets, blocks and operator chains may nest (netspec.parse.check_nesting). The parse
# tree is turned into the AST and evaluated recursively, so this bound is what keeps Python's
# stack safe; real specs nest about a dozen levels.
MAX_NESTING = 100
# The largest spec file read whatever --limit max_source_bytes says (netspec.elaborate.read_source):
# real ones are well under a megabyte (a 670-layer Caffe ResNet-152 is 60 KiB); this stops a
# device file or a mistaken multi-gigabyte file at the door.
MAX_SOURCE_BYTES = 256 * 2**20
# The largest ONNX file read (netspec.onnx_import.parse_model, and an upload to netspec serve):
# protobuf's cap on one message, so no valid single-file model is larger; a bigger model keeps
# its weights as external data, which netspec does not need to read a model's structure.
MAX_ONNX_BYTES = 2**31 - 1


@dataclass(frozen=True)
class IncludeRules:
    """Which files ``include`` may read: a path relative to the including file or to a folder of
    ``search_path``, inside the root spec's folder or a folder of ``search_path``; absolute paths
    and ``..`` escapes are refused unless ``allow_any``."""

    search_path: tuple[Path, ...] = ()
    allow_any: bool = False


DEFAULT_INCLUDE_RULES = IncludeRules()
