"""The LALR tables shipped in netspec/lark_tables.json: built from today's grammars, and loading
a parser that behaves exactly as one built from the grammar."""

from __future__ import annotations

from pathlib import Path

import pytest
from lark import Lark
from lark.exceptions import UnexpectedInput

from netspec import parse_tables

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
CORPUS = {
    "grammar.lark": sorted((ROOT / "zoo").rglob("*.net")),
    "caffe.lark": sorted((ROOT / "tests" / "data" / "caffe").rglob("*.prototxt")),
}
# Broken inputs: the error (position and expected tokens) must match too.
BROKEN = {
    "grammar.lark": ["Convolution c { num_output: }", "input data: [N, 3,", "repeat 2 as { }", "let = 3"],
    "caffe.lark": ['layer { name: "a" ', "input_dim: : 3", "layer { type: }"],
}


def test_the_shipped_tables_were_built_from_the_current_grammars() -> None:
    # If this fails after a grammar edit or a Lark upgrade: python tools/gen_parse_tables.py
    assert parse_tables.stale_grammars() == []


@pytest.mark.parametrize("grammar", sorted(parse_tables.GRAMMAR_OPTIONS))
def test_the_json_form_round_trips_lark_serialisation_exactly(grammar: str) -> None:
    tables = parse_tables.serialize_parser(parse_tables.build_parser(grammar))
    assert parse_tables.read_tables(parse_tables.tables_json(tables)) == tables


def test_parsers_come_from_the_shipped_tables_without_building(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_building(grammar: str) -> Lark:
        raise AssertionError(f"built the tables of {grammar} at run time")

    monkeypatch.setattr(parse_tables, "build_parser", no_building)
    for grammar in parse_tables.GRAMMAR_OPTIONS:
        assert isinstance(parse_tables.parser.__wrapped__(grammar), Lark)


def _outcome(parser: Lark, text: str, start: str) -> object:
    try:
        return parser.parse(text, start=start)
    except UnexpectedInput as exc:
        return (type(exc).__name__, exc.line, exc.column, sorted(getattr(exc, "expected", None) or ()))


@pytest.mark.parametrize("grammar", sorted(parse_tables.GRAMMAR_OPTIONS))
def test_the_loaded_parser_parses_like_the_built_one(grammar: str) -> None:
    loaded = parse_tables.parser.__wrapped__(grammar)
    built = parse_tables.build_parser(grammar)
    start = parse_tables.GRAMMAR_OPTIONS[grammar]["start"][0]
    texts = [path.read_text(encoding="utf-8") for path in CORPUS[grammar]]
    assert len(texts) >= 3
    for text in texts + BROKEN[grammar]:
        assert _outcome(loaded, text, start) == _outcome(built, text, start)
    # Positions come through too (propagate_positions is a table option).
    tree = loaded.parse(texts[0], start=start)
    assert tree.meta.line >= 1
