"""Lark parsers for netspec's two grammars, loaded from LALR tables shipped with the package.

Building the LALR tables from a grammar costs ~0.4 s on every start; the tables in
``netspec/lark_tables.json`` (written by ``tools/gen_parse_tables.py``) load in milliseconds.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import lark
from lark import Lark
from lark.grammar import Rule
from lark.lexer import TerminalDef

TABLES_FILE = "lark_tables.json"
# The package's folder, where the grammars and the tables lie (importlib.resources would cost a
# report 3 ms of imports for the same two reads).
_PACKAGE = Path(__file__).parent

# The Lark options of each grammar shipped in the package, in one place: the tables are built
# with these, and their digest covers them.
GRAMMAR_OPTIONS: dict[str, dict[str, Any]] = {
    "grammar.lark": {
        "parser": "lalr",
        "start": ["module", "expr"],
        "propagate_positions": True,
        "maybe_placeholders": True,
    },
    "caffe.lark": {"parser": "lalr", "start": ["message"], "propagate_positions": True},
}

# JSON has neither tuples nor integer keys, both of which Lark's tables use: they travel tagged.
_TUPLE, _ITEMS = "__tuple__", "__items__"


def grammar_text(grammar: str) -> str:
    return (_PACKAGE / grammar).read_text(encoding="utf-8")


def grammar_digest(grammar: str) -> str:
    """What the shipped tables of ``grammar`` must have been built from: its text, its options
    and the Lark version (the tables are in Lark's internal format)."""
    key = f"{lark.__version__}\n{sorted(GRAMMAR_OPTIONS[grammar].items())!r}\n{grammar_text(grammar)}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def build_parser(grammar: str) -> Lark:
    """The parser built from the grammar's text (computes the LALR tables)."""
    return Lark(grammar_text(grammar), **GRAMMAR_OPTIONS[grammar])


def serialize_parser(parser: Lark) -> dict[str, Any]:
    """The parser's tables as plain Python values (Lark's own serialisation, as its standalone
    generator writes them)."""
    data, memo = parser.memo_serialize([TerminalDef, Rule])
    return {"data": data, "memo": memo}


def tables_json(tables: dict[str, Any]) -> str:
    """``tables`` as the text of ``lark_tables.json``."""
    return json.dumps(_tagged(tables), indent=0) + "\n"


def read_tables(text: str) -> dict[str, Any]:
    """The inverse of :func:`tables_json`."""
    return json.loads(text, object_hook=_untagged)


def _tagged(value: Any) -> Any:
    if isinstance(value, tuple):
        return {_TUPLE: [_tagged(item) for item in value]}
    if isinstance(value, list):
        return [_tagged(item) for item in value]
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value) and not {_TUPLE, _ITEMS} & value.keys():
            return {key: _tagged(item) for key, item in value.items()}
        return {_ITEMS: [[_tagged(key), _tagged(item)] for key, item in value.items()]}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"a Lark table holds a {type(value).__name__}, which JSON cannot carry")


def _untagged(obj: dict[str, Any]) -> Any:
    if _TUPLE in obj:
        return tuple(obj[_TUPLE])
    if _ITEMS in obj:
        return dict(obj[_ITEMS])
    return obj


@functools.cache
def shipped_tables() -> dict[str, Any]:
    """The tables in the package, by grammar file name ({} if the file is missing)."""
    try:
        text = (_PACKAGE / TABLES_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return read_tables(text)


def stale_grammars() -> list[str]:
    """The grammars whose shipped tables are missing or were built from something else."""
    tables = shipped_tables()
    return [
        grammar
        for grammar in GRAMMAR_OPTIONS
        if grammar not in tables or tables[grammar]["digest"] != grammar_digest(grammar)
    ]


@functools.cache
def parser(grammar: str) -> Lark:
    """The parser of ``grammar`` (a file name in the package), made once per process: from the
    shipped tables when they were built from this grammar with this Lark, else from the grammar."""
    shipped = shipped_tables().get(grammar)
    if shipped is not None and shipped["digest"] == grammar_digest(grammar):
        # NOTE: _load_from_dict is how Lark's standalone parsers load these tables: Lark.load
        # without the pickle.
        return Lark._load_from_dict(shipped["data"], shipped["memo"])
    return build_parser(grammar)
