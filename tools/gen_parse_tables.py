"""Regenerate netspec/lark_tables.json, the precomputed LALR tables of netspec's grammars.

Run after editing netspec/grammar.lark or netspec/caffe.lark, or after changing Lark's version:
    python tools/gen_parse_tables.py          # rewrite the file
    python tools/gen_parse_tables.py --check  # exit 1 if the file is stale
Without fresh tables netspec still works, building the tables at start-up (~0.4 s slower).
Lark numbers its states differently from run to run, so staleness is judged by the digest of
what the tables were built from (grammar text, options, Lark version), not by the file's bytes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from netspec import parse_tables

TARGET = Path(__file__).resolve().parent.parent / "netspec" / parse_tables.TABLES_FILE


def render() -> str:
    return parse_tables.tables_json(
        {
            grammar: {
                "digest": parse_tables.grammar_digest(grammar),
                **parse_tables.serialize_parser(parse_tables.build_parser(grammar)),
            }
            for grammar in parse_tables.GRAMMAR_OPTIONS
        }
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail if the shipped tables are stale")
    args = parser.parse_args()
    if args.check:
        stale = parse_tables.stale_grammars()
        for grammar in stale:
            print(f"{TARGET}: the tables of {grammar} are stale: run {sys.argv[0]}", file=sys.stderr)
        return 1 if stale else 0
    text = render()
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET} ({len(text) / 1024:.0f} KiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
