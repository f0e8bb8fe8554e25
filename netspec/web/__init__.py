"""netspec in the browser: the self-contained HTML report (``netspec report --format html``) and
the assets shared with the editor of ``netspec serve`` (:mod:`netspec.web.server`).

The page draws the rows of a :class:`netspec.report.Report` as they are; the browser computes
no count. The graph layout (elkjs) and the editor (CodeMirror 6) are npm packages bundled into
``vendor/`` by ``tools/build_web_assets.sh``, with their licences in
``vendor/THIRD_PARTY_LICENSES.txt``."""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from netspec import __version__

if TYPE_CHECKING:
    from netspec.report import Report

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@cache
def asset(name: str) -> str:
    """The text of ``assets/NAME`` or ``vendor/NAME`` (``vendor/layout.min.js``) in the package."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def inline_script(text: str) -> str:
    """``text`` safe inside a ``<script>`` element: no ``</script`` (nor ``<!--``) can end it early.
    NOTE: ``<\\/`` means ``</`` in JavaScript strings, regular expressions and JSON alike."""
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def fill(template: str, values: dict[str, str]) -> str:
    """``{{name}}`` placeholders replaced in one pass (a value holding braces stays as it is)."""
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def _escape_html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def render_html(report: Report, depth: int = 0, source: str = "") -> str:
    """One HTML file holding ``report`` (:func:`netspec.report.report_data` at depth 0: a row per
    layer), its scripts and styles: it opens offline, and its Content-Security-Policy forbids any
    fetch. Scopes ``depth`` deep start folded (the ``--depth`` of the text report)."""
    if report.depth:
        raise ValueError("the HTML report folds scopes itself: build its data with depth=0")
    return fill(
        asset("assets/report.html"),
        {
            "version": __version__,
            "title": _escape_html(report.name),
            "source": _escape_html(source),
            "report_css": asset("assets/report.css").replace("</", "<\\/"),
            "data": inline_script(json.dumps(report.to_dict(), ensure_ascii=False)),
            "layout_js": inline_script(asset("vendor/layout.min.js")),
            "report_js": inline_script(asset("assets/report.js")),
            "depth": str(int(depth)),
        },
    )
