"""``netspec serve``: a local web page with an editor holding a spec, its diagnostics at their
line and column, its live report and graph, a compare view and the compiled ONNX model.

The server is the standard library's ``http.server``. It reads nothing from disk but the zoo
(models and the files they include) and what the page sends; a spec's includes may only read
from the zoo. An uploaded ONNX model comes as its bytes and is read in memory by the ONNX front
end (netspec.onnx_import), never written anywhere. The CLI's limits apply, and no spec stops it:
every request's failure becomes a diagnostic or an error reply.
"""

from __future__ import annotations

import io
import json
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from netspec.diagnostics import Diagnostic, NetspecError, SourceSpan
from netspec.graph import Graph
from netspec.limits import DEFAULT_LIMITS, MAX_ONNX_BYTES, MAX_SOURCE_BYTES, IncludeRules, Limits
from netspec.web import asset, fill, inline_script
from netspec.zoo import catalogued_text, zoo_folder, zoo_names, zoo_spec

if TYPE_CHECKING:
    from netspec.report import Report, ReportRow

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# The most a request body may hold: the largest spec the CLI reads, and room for the JSON around it.
MAX_REQUEST_BYTES = MAX_SOURCE_BYTES + 2**20
MAX_COMPARED_MODELS = 16
MAX_BATCH = 4096
SPEC_SUFFIXES = (".net", ".prototxt", ".pbtxt")
# The route that takes an ONNX model's bytes (application/octet-stream) rather than JSON.
ONNX_REPORT_ROUTE = "/api/onnx-report"


def zoo_models() -> dict[str, Path]:
    """The zoo's models by name (``resnet50``): what the page may load, and all the server reads
    from disk besides the files those specs include."""
    models = {name: zoo_spec(name) for name in zoo_names()}
    return {name: path for name, path in models.items() if path is not None}


class RequestError(Exception):
    """A request the server cannot serve: its reply is ``status`` with this message."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Spec:
    """A spec sent by the page: its text and the file name it goes by (``resnet50.net``, an
    uploaded ``deploy.prototxt``)."""

    text: str
    filename: str

    @classmethod
    def from_request(cls, body: dict[str, Any]) -> Spec:
        text, filename = body.get("text"), body.get("filename") or "untitled.net"
        if not isinstance(text, str) or not isinstance(filename, str):
            raise RequestError(HTTPStatus.BAD_REQUEST, "expected a spec's 'text' and 'filename' as strings")
        name = PurePath(filename.replace("\\", "/")).name
        if not name.lower().endswith(SPEC_SUFFIXES):
            raise RequestError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                f"'{name}' is not a spec: the editor reads .net specs and Caffe .prototxt files",
            )
        return cls(text, name)

    @property
    def path(self) -> str:
        """Where the spec stands for its includes: in the zoo's folder, so that an include can
        reach the zoo's libraries and nothing else. The file itself is never read."""
        return str(zoo_folder() / self.filename)


def load_spec_text(spec: Spec, limits: Limits) -> Graph:
    """The spec's graph: a Caffe file by its suffix, else a .net spec whose includes read only
    from the zoo."""
    from netspec.compiler import load_source
    from netspec.elaborate import source_from_text

    return load_source(source_from_text(spec.text, spec.path, limits), limits, includes=IncludeRules())


class Workbench:
    """What the page asks for, as plain data: reports, comparisons, ONNX bytes. One spec is
    worked on at a time (the analyses are CPU-bound; a queue keeps each one fast)."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS, max_model_bytes: int = MAX_ONNX_BYTES) -> None:
        self.limits = limits
        self.max_model_bytes = max_model_bytes
        self.lock = threading.Lock()

    def zoo(self) -> dict[str, Any]:
        return {"models": list(zoo_models())}

    def zoo_model(self, name: str) -> dict[str, Any]:
        from netspec.elaborate import read_source

        path = zoo_models().get(name)
        if path is None:
            raise RequestError(HTTPStatus.NOT_FOUND, f"the zoo has no model '{name}'")
        try:
            text = read_source(path, self.limits).text
        except NetspecError as exc:
            raise RequestError(HTTPStatus.UNPROCESSABLE_ENTITY, exc.render()) from None
        return {"name": name, "filename": path.name, "text": text}

    def report(self, body: dict[str, Any]) -> dict[str, Any]:
        from netspec.report import report_data
        from netspec.typed import bind

        spec = Spec.from_request(body)
        with self.lock:
            try:
                graph = load_spec_text(spec, self.limits)
                analysis = bind(graph, _batch(body), limits=self.limits)
                report = report_data(analysis, depth=0)
            except NetspecError as exc:
                return {"ok": False, "diagnostics": [diagnostic_data(d, spec) for d in exc.diagnostics]}
        warnings = [diagnostic_data(w, spec) for w in graph.warnings]
        return {"ok": True, "report": _shown_sources(report, spec).to_dict(), "diagnostics": warnings}

    def onnx_report(self, data: bytes, filename: str, batch: int = 1) -> dict[str, Any]:
        """An uploaded ONNX model's report, as :meth:`report` gives a spec's, with ``spec``: the
        text ``netspec convert`` would write for it (shown read-only: the report is the ONNX
        model's, and editing the text would describe another model), or a comment saying why
        there is none. Bad bytes are diagnostics; nothing is written to disk."""
        from netspec.convert import convert_graph
        from netspec.onnx_import import import_model, parse_model
        from netspec.report import report_data
        from netspec.typed import bind

        name = PurePath(filename.replace("\\", "/")).name or "model.onnx"
        if not name.lower().endswith(".onnx"):
            raise RequestError(HTTPStatus.UNPROCESSABLE_ENTITY, f"'{name}' is not an ONNX model (.onnx)")
        if len(data) > self.max_model_bytes:
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _too_large(name, len(data), self.max_model_bytes)
            )
        if not 1 <= batch <= MAX_BATCH:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"the batch must be an integer from 1 to {MAX_BATCH}")
        shown = Spec("", name)
        with self.lock:
            try:
                imported = import_model(parse_model(data, name), name)
                analysis = bind(imported.graph, batch, limits=self.limits)
                report = report_data(analysis, depth=0)
            except NetspecError as exc:
                return {"ok": False, "diagnostics": [diagnostic_data(d, shown) for d in exc.diagnostics]}
            if imported.unknown:
                listed = ", ".join(sorted(imported.unknown))
                spec = (
                    f"# {name}: an ONNX model, read-only here.\n# It has operators netspec has no layer "
                    f"for ({listed}),\n# so `netspec convert` cannot write it as a .net spec; its "
                    "report counts them as 0.\n"
                )
            else:
                try:
                    spec = convert_graph(imported.graph, origin=name).text
                except NetspecError as exc:
                    reason = exc.diagnostics[0].message
                    spec = f"# {name}: an ONNX model, read-only here.\n# netspec convert cannot write it: "
                    spec += f"{reason}\n"
        warnings = [diagnostic_data(w, shown) for w in imported.graph.warnings]
        return {
            "ok": True,
            "report": report.to_dict(),
            "diagnostics": warnings,
            "filename": name,
            "spec": spec,
        }

    def compare(self, body: dict[str, Any]) -> dict[str, Any]:
        from netspec.compare import compare_graphs

        models = body.get("models")
        if not isinstance(models, list) or not models or not all(isinstance(m, dict) for m in models):
            raise RequestError(HTTPStatus.BAD_REQUEST, "expected 'models', a list of specs")
        if len(models) > MAX_COMPARED_MODELS:
            raise RequestError(
                HTTPStatus.UNPROCESSABLE_ENTITY, f"compare at most {MAX_COMPARED_MODELS} models at once"
            )
        specs = [Spec.from_request(m) for m in models]
        with self.lock:
            graphs = []
            for spec in specs:
                try:
                    graphs.append(load_spec_text(spec, self.limits))
                except NetspecError as exc:
                    diagnostics = [diagnostic_data(d, spec) for d in exc.diagnostics]
                    return {"ok": False, "model": spec.filename, "diagnostics": diagnostics}
            try:
                names = [PurePath(s.filename).stem for s in specs]
                # Published accuracy only for a zoo model sent unchanged.
                entries = [catalogued_text(s.filename, s.text) for s in specs]
                rows = compare_graphs(names, graphs, batch=_batch(body), limits=self.limits, entries=entries)
            except NetspecError as exc:
                return {"ok": False, "diagnostics": [diagnostic_data(d, specs[0]) for d in exc.diagnostics]}
        return {"ok": True, "rows": [row.to_dict() for row in rows]}

    def onnx(self, body: dict[str, Any]) -> tuple[bytes, str] | dict[str, Any]:
        """The compiled model's bytes and file name, or the diagnostics that stop it."""
        from netspec.compiler import compile_graph
        from netspec.export.onnx import check_model
        from netspec.output import write_model_pieces
        from netspec.typed import bind

        spec = Spec.from_request(body)
        with self.lock:
            try:
                graph = load_spec_text(spec, self.limits)
                model = compile_graph(bind(graph, _batch(body), limits=self.limits))
            except NetspecError as exc:
                return {"ok": False, "diagnostics": [diagnostic_data(d, spec) for d in exc.diagnostics]}
            check_model(model)
            buffer = io.BytesIO()
            write_model_pieces(model, buffer)
        return buffer.getvalue(), PurePath(spec.filename).stem + ".onnx"


def _batch(body: dict[str, Any]) -> int:
    batch = body.get("batch", 1)
    if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= MAX_BATCH:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"the batch must be an integer from 1 to {MAX_BATCH}")
    return batch


def _too_large(name: str, size: int, most: int) -> str:
    return f"{name} is {size:,} bytes, more than the {most:,} an uploaded ONNX model may be"


def _shown_path(path: str, spec: Spec) -> str:
    """A file as the page names it: the edited spec by its name, a zoo file relative to the zoo."""
    if path == spec.path:
        return spec.filename
    folder = zoo_folder()
    resolved = Path(path).resolve()
    return resolved.relative_to(folder).as_posix() if resolved.is_relative_to(folder) else Path(path).name


def _shown_sources(report: Report, spec: Spec) -> Report:
    """``report`` with every row's ``path:line`` naming its file as the page does (:func:`_shown_path`)."""

    def shown(row: ReportRow) -> ReportRow:
        if not row.source:
            return row
        path, _, line = row.source.rpartition(":")
        return replace(row, source=f"{_shown_path(path, spec)}:{line}")

    return replace(
        report,
        rows=tuple(shown(row) for row in report.rows),
        scopes=tuple(replace(header, row=shown(header.row)) for header in report.scopes),
    )


def diagnostic_data(diagnostic: Diagnostic, spec: Spec) -> dict[str, Any]:
    """A diagnostic for the editor: where to mark it in the edited spec (its own place, else the
    innermost instantiation there that led to it, else line 1) and its message, hint and notes;
    ``text`` is the compiler form the CLI prints, with the page's file names."""
    place: SourceSpan | None = None
    if diagnostic.span is not None and diagnostic.span.source.path == spec.path:
        place = diagnostic.span
    else:
        frames = [f.span for f in diagnostic.trace if f.span.source.path == spec.path]
        place = frames[-1] if frames else None
    text = diagnostic.render()
    paths = {spec.path, diagnostic.span.source.path} if diagnostic.span else {spec.path}
    paths.update(frame.span.source.path for frame in diagnostic.trace)
    for path in sorted(paths, key=len, reverse=True):
        text = text.replace(path, _shown_path(path, spec))
    text = text.replace(str(zoo_folder()), "zoo")  # in messages too: the server's folders are its own
    located = place is not None
    return {
        "severity": diagnostic.severity,
        "message": diagnostic.message,
        "hint": diagnostic.hint,
        "notes": list(diagnostic.notes),
        "line": place.line if place else 1,
        "column": place.column if place else 1,
        "end_line": place.end_line if place else 1,
        "end_column": place.end_column if place else 1,
        "located": located,
        "text": text,
    }


def editor_page(max_model_bytes: int = MAX_ONNX_BYTES) -> str:
    """The editor's page, with every script and style inside (it works without a network);
    ``max_model_bytes``: the largest ONNX model it uploads."""
    from netspec import __version__

    return fill(
        asset("assets/editor.html"),
        {
            "version": __version__,
            "max_model_bytes": str(int(max_model_bytes)),
            "report_css": asset("assets/report.css").replace("</", "<\\/"),
            "editor_css": asset("assets/editor.css").replace("</", "<\\/"),
            "layout_js": inline_script(asset("vendor/layout.min.js")),
            "editor_lib_js": inline_script(asset("vendor/editor.min.js")),
            "report_js": inline_script(asset("assets/report.js")),
            "editor_js": inline_script(asset("assets/editor.js")),
        },
    )


@dataclass(frozen=True)
class Reply:
    """A response: its status, content type, body and any further headers."""

    status: HTTPStatus
    kind: str
    payload: bytes
    headers: tuple[tuple[str, str], ...] = ()


def _json(value: Any, status: HTTPStatus = HTTPStatus.OK) -> Reply:
    return Reply(status, "application/json", json.dumps(value, ensure_ascii=False).encode("utf-8"))


class Handler(BaseHTTPRequestHandler):
    """Routes: ``GET /`` the page (and its layout worker, ``/vendor/elk-worker.min.js``);
    ``GET /api/zoo``, ``GET /api/zoo/NAME``; ``POST /api/report``,
    ``/api/compare``, ``/api/onnx`` with a JSON body; ``POST /api/onnx-report?name=M.onnx&batch=N``
    with an ONNX model's bytes (application/octet-stream)."""

    workbench: Workbench
    server_version = "netspec"

    loopback_only: bool = True

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self._answer(lambda: self._checked(lambda: self._get(path)))

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        self._answer(lambda: self._checked(lambda: self._post(path)))

    def _checked(self, work: Callable[[], Reply]) -> Reply:
        """Refuse what a web page elsewhere could send: a request naming another host (DNS
        rebinding) to a loopback server, and a POST that is not JSON (a cross-site form)."""
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        if self.loopback_only and host not in LOOPBACK_HOSTS:
            raise RequestError(
                HTTPStatus.FORBIDDEN, f"this server answers requests for 127.0.0.1, not '{host}'"
            )
        if self.command == "POST":
            binary = urlsplit(self.path).path == ONNX_REPORT_ROUTE
            kind = "application/octet-stream" if binary else "application/json"
            if self.headers.get("Content-Type", "").split(";")[0].strip() != kind:
                raise RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"this request's body must be {kind}")
        return work()

    def _get(self, path: str) -> Reply:
        if path in ("/", "/index.html"):
            policy = (
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                "connect-src 'self'; worker-src 'self'; img-src data:"
            )
            page = editor_page(self.workbench.max_model_bytes).encode("utf-8")
            headers = (("Content-Security-Policy", policy),)
            return Reply(HTTPStatus.OK, "text/html; charset=utf-8", page, headers)
        if path == "/api/zoo":
            return _json(self.workbench.zoo())
        if path.startswith("/api/zoo/"):
            return _json(self.workbench.zoo_model(unquote(path.removeprefix("/api/zoo/"))))
        if path == "/vendor/elk-worker.min.js":
            script = asset("vendor/elk-worker.min.js").encode("utf-8")
            return Reply(HTTPStatus.OK, "text/javascript; charset=utf-8", script)
        if path == "/licenses":
            licences = asset("vendor/THIRD_PARTY_LICENSES.txt").encode("utf-8")
            return Reply(HTTPStatus.OK, "text/plain; charset=utf-8", licences)
        raise RequestError(HTTPStatus.NOT_FOUND, f"no page {path}")

    def _post(self, path: str) -> Reply:
        if path == ONNX_REPORT_ROUTE:
            return _json(self._onnx_report())
        routes: dict[str, Callable[[dict[str, Any]], Any]] = {
            "/api/report": self.workbench.report,
            "/api/compare": self.workbench.compare,
            "/api/onnx": self.workbench.onnx,
        }
        if path not in routes:
            raise RequestError(HTTPStatus.NOT_FOUND, f"no page {path}")
        result = routes[path](self._body())
        if isinstance(result, tuple):
            data, filename = result
            disposition = (("Content-Disposition", f'attachment; filename="{filename}"'),)
            return Reply(HTTPStatus.OK, "application/octet-stream", data, disposition)
        return _json(result)

    def _length(self) -> int:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "a request needs its Content-Length") from None
        if length < 0:
            raise RequestError(HTTPStatus.BAD_REQUEST, "a negative Content-Length")
        return length

    def _onnx_report(self) -> dict[str, Any]:
        """An uploaded ONNX model's report: the size is checked before a byte of it is read."""
        query = parse_qs(urlsplit(self.path).query)
        name = query.get("name", ["model.onnx"])[0]
        try:
            batch = int(query.get("batch", ["1"])[0])
        except ValueError:
            raise RequestError(
                HTTPStatus.BAD_REQUEST, f"the batch must be an integer from 1 to {MAX_BATCH}"
            ) from None
        length, most = self._length(), self.workbench.max_model_bytes
        if length > most:
            self.close_connection = True  # the body is left unread
            shown = PurePath(name.replace("\\", "/")).name
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _too_large(shown, length, most))
        return self.workbench.onnx_report(self.rfile.read(length), name, batch)

    def _body(self) -> dict[str, Any]:
        length = self._length()
        if length > MAX_REQUEST_BYTES:
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the request is {length:,} bytes, more than the {MAX_SOURCE_BYTES:,} a spec may be",
            )
        try:
            body = json.loads(self.rfile.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise RequestError(HTTPStatus.BAD_REQUEST, "the request body is not JSON") from None
        if not isinstance(body, dict):
            raise RequestError(HTTPStatus.BAD_REQUEST, "the request body must be a JSON object")
        return body

    def _answer(self, work: Callable[[], Reply]) -> None:
        try:
            reply = work()
        except RequestError as exc:
            reply = _json({"ok": False, "error": str(exc)}, exc.status)
        except MemoryError:
            message = "out of memory: the network's tensors or weights are too large for this machine"
            reply = _json({"ok": False, "error": message}, HTTPStatus.INSUFFICIENT_STORAGE)
        except Exception as exc:  # a bug in netspec must not stop the server
            traceback.print_exc(file=sys.stderr)
            message = f"internal error: {type(exc).__name__}: {exc} (this is a bug in netspec)"
            reply = _json({"ok": False, "error": message}, HTTPStatus.INTERNAL_SERVER_ERROR)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.kind)
        self.send_header("Content-Length", str(len(reply.payload)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a request is not news (an internal error prints its traceback)."""


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def make_server(
    host: str = "127.0.0.1",
    port: int = 0,
    limits: Limits = DEFAULT_LIMITS,
    max_model_bytes: int = MAX_ONNX_BYTES,
) -> ThreadingHTTPServer:
    """A server bound to ``host:port`` (port 0: any free port), not yet serving; an uploaded
    ONNX model may be ``max_model_bytes`` long (the CLI's cap by default)."""
    attributes = {"workbench": Workbench(limits, max_model_bytes), "loopback_only": host in LOOPBACK_HOSTS}
    handler = type("NetspecHandler", (Handler,), attributes)
    server_class = _IPv6Server if ":" in host else ThreadingHTTPServer
    server = server_class((host, port), handler)
    server.daemon_threads = True
    return server
