"""netspec in the browser, without a browser: the HTML report file (self-contained, its data the
report's rows) and the server of ``netspec serve`` (routes, diagnostics, limits, robustness).
tests/test_browser.py drives both in headless Chromium."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from netspec.cli import main
from netspec.compiler import load_graph
from netspec.report import report_data
from netspec.typed import bind
from netspec.web import inline_script, render_html
from netspec.web import server as web_server
from netspec.zoo import zoo_folder

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "zoo"
CAFFE = Path(__file__).resolve().parent / "data" / "caffe"
ONNX_MODEL = Path(__file__).resolve().parent / "data" / "onnx" / "resnet_basic_torchscript17.onnx"

TINY = """\
name: "tiny"
input data: [N, 3, 16, 16]
Convolution conv { num_output: 4  kernel_size: 3  pad: 1 }
ReLU relu
Pooling pool { pool: MAX  kernel_size: 2  stride: 2 }
"""


def embedded_data(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="netspec-data">(.*?)</script>', html, re.S)
    assert match, "the report holds its data in a JSON script element"
    return json.loads(match.group(1))


@pytest.mark.unit
@pytest.mark.parametrize(
    "spec", [ZOO / "resnet18.net", CAFFE / "bvlc_alexnet.prototxt", ONNX_MODEL], ids=lambda p: p.name
)
def test_html_report_embeds_the_report_rows(spec: Path, tmp_path: Path) -> None:
    output = tmp_path / "report.html"
    assert main(["report", str(spec), "--format", "html", "-o", str(output), "--depth", "1"]) == 0
    html = output.read_text(encoding="utf-8")
    expected = report_data(bind(load_graph(spec)), depth=0).to_dict()
    assert embedded_data(html) == json.loads(json.dumps(expected))
    assert "{ depth: 1 }" in html


@pytest.mark.unit
def test_html_report_is_self_contained(tmp_path: Path) -> None:
    output = tmp_path / "r.html"
    assert main(["report", str(ZOO / "resnet18.net"), "--format", "html", "-o", str(output)]) == 0
    html = output.read_text(encoding="utf-8")
    # Nothing is fetched: no external script, style, image or font, and the policy forbids it.
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", html)
    assert "default-src 'none'" in html
    assert "new ELK" in html or "ELK.default" in html  # the layout library is inside
    assert html.count("<script") == html.count("</script>") == 4


@pytest.mark.unit
def test_html_report_to_stdout_and_bad_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "tiny.net"
    spec.write_text(TINY)
    assert main(["report", str(spec), "--format", "html"]) == 0
    assert embedded_data(capsys.readouterr().out)["name"] == "tiny"
    spec.write_text(TINY.replace("kernel_size: 3", "kernal_size: 3"))
    output = tmp_path / "out.html"
    assert main(["report", str(spec), "--format", "html", "-o", str(output)]) == 1
    assert "kernal_size" in capsys.readouterr().err and not output.exists()


@pytest.mark.unit
def test_script_text_cannot_close_its_element() -> None:
    text = inline_script('var s = "</script><script>alert(1)</script>"; <!-- x')
    assert "</script" not in text and "<!--" not in text
    report = replace(report_data(bind(load_graph(ZOO / "lenet5.net"))), name="</script><b>")
    assert "</script><b>" not in render_html(report)
    with pytest.raises(ValueError, match="depth=0"):
        render_html(replace(report, depth=1))


@pytest.mark.unit
def test_vendored_components_are_the_pinned_ones() -> None:
    lock = json.loads((ROOT / "tools" / "web" / "package-lock.json").read_text())
    licences = (ROOT / "netspec" / "web" / "vendor" / "THIRD_PARTY_LICENSES.txt").read_text()
    for package in ("elkjs", "codemirror", "@codemirror/view", "@codemirror/lint"):
        version = lock["packages"][f"node_modules/{package}"]["version"]
        assert f"{package}@{version} (" in licences


# The server, in this process on a free port.


@contextmanager
def serving(**options: Any) -> Iterator[str]:
    server = web_server.make_server("127.0.0.1", 0, **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    with serving() as url:
        yield url


def request(url: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    headers = {"Content-Type": "application/json"} if data is not None else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers)) as response:
            payload, status, kind = response.read(), response.status, response.headers["Content-Type"]
    except urllib.error.HTTPError as failure:
        payload, status, kind = failure.read(), failure.code, failure.headers["Content-Type"]
    return status, json.loads(payload) if kind == "application/json" else payload


@pytest.mark.unit
def test_server_page_and_zoo(served: str) -> None:
    status, page = request(served + "/")
    assert status == 200 and b"NetspecEditor" in page and b"NetspecReport" in page
    status, zoo = request(served + "/api/zoo")
    assert status == 200 and zoo["models"] == sorted(p.stem for p in ZOO.glob("*.net"))
    status, model = request(served + "/api/zoo/resnet50")
    assert status == 200 and model["text"] == (ZOO / "resnet50.net").read_text()
    for name in ("nothing", "..%2Fpyproject", "lib%2Fresnet"):
        status, answer = request(served + "/api/zoo/" + name)
        assert status == 404 and "no model" in answer["error"]


@pytest.mark.unit
def test_server_report_equals_the_cli_report(served: str) -> None:
    text = (ZOO / "resnet50.net").read_text()
    status, answer = request(served + "/api/report", {"text": text, "filename": "resnet50.net"})
    assert status == 200 and answer["ok"]
    expected = report_data(bind(load_graph(ZOO / "resnet50.net")), depth=0).to_dict()
    ours = answer["report"]
    assert ours["totals"] == expected["totals"]
    assert [r["name"] for r in ours["layers"]] == [r["name"] for r in expected["layers"]]
    without_source = [{k: v for k, v in row.items() if k != "source"} for row in expected["layers"]]
    assert [{k: v for k, v in row.items() if k != "source"} for row in ours["layers"]] == json.loads(
        json.dumps(without_source)
    )
    # Sources are named as the page knows the files: the edited spec, zoo files relative to the zoo.
    sources = {row["source"].rpartition(":")[0] for row in ours["layers"] + ours["scopes"]}
    assert sources == {"lib/resnet.net"}
    status, answer = request(served + "/api/report", {"text": TINY, "filename": "mine.net"})
    assert [row["source"] for row in answer["report"]["layers"]] == ["mine.net:3", "mine.net:4", "mine.net:5"]
    caffe = (CAFFE / "bvlc_alexnet.prototxt").read_text()
    status, answer = request(
        served + "/api/report", {"text": caffe, "filename": "deploy.prototxt", "batch": 2}
    )
    assert answer["ok"] and answer["report"]["batch"] == 2


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "line", "word", "message"),
    [
        (TINY.replace("kernel_size: 3", "kernal_size: 3"), 3, "kernal_size", "did you mean 'kernel_size'"),
        (TINY.replace("ReLU relu", "ReLU relu {"), 5, "pool", "is not closed"),
        (TINY + "Eltwise add { bottom: [pool, nowhere] }\n", 6, "nowhere", "nowhere"),
        # Outside the zoo's folder: the repository's pyproject.toml from a source tree (refused
        # as outside), nothing at all beside an installed package's zoo (not found): refused both.
        ('include "../pyproject.toml"\n' + TINY, 1, None, "outside the spec's folder|cannot find"),
        ('include "/etc/passwd"\n' + TINY, 1, None, "absolute path"),
    ],
    ids=["typo", "unclosed", "unknown-input", "include-escape", "include-absolute"],
)
def test_server_diagnostics_at_line_and_column(
    served: str, text: str, line: int, word: str | None, message: str
) -> None:
    status, answer = request(served + "/api/report", {"text": text, "filename": "mine.net"})
    assert status == 200 and not answer["ok"]
    first = answer["diagnostics"][0]
    assert first["line"] == line and first["located"], first
    if word is not None:
        assert first["column"] == text.splitlines()[line - 1].index(word) + 1
    assert any(part in first["text"] for part in message.split("|"))
    assert first["text"].startswith(f"mine.net:{line}:")


@pytest.mark.unit
def test_server_diagnostic_in_a_zoo_library_points_at_the_instantiation(served: str) -> None:
    text = (ZOO / "resnet18.net").read_text().replace("[2, 2, 2, 2]", "[2, 2, 2, -1]")
    status, answer = request(served + "/api/report", {"text": text, "filename": "resnet18.net"})
    assert status == 200 and not answer["ok"]
    text_lines = answer["diagnostics"][0]["text"]
    assert str(zoo_folder()) not in text_lines  # files are named as the page knows them


@pytest.mark.unit
def test_server_refuses_bad_requests_and_keeps_serving(served: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert request(served + "/api/report", raw=b"{not json")[0] == 400
    assert request(served + "/api/report", [1, 2])[0] == 400
    assert request(served + "/api/report", {"text": 3})[0] == 400
    assert request(served + "/api/report", {"text": TINY, "filename": "a.txt"})[0] == 422
    assert request(served + "/api/report", {"text": TINY, "filename": "a.net", "batch": 0})[0] == 400
    assert request(served + "/api/nothing", {})[0] == 404
    too_big = urllib.request.Request(
        served + "/api/report",
        data=b"{}",
        headers={"Content-Length": str(web_server.MAX_REQUEST_BYTES + 1), "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as failure:
        urllib.request.urlopen(too_big)
    assert failure.value.code == 413

    # What another web page could send: a form post, a request for a rebound host name.
    form = urllib.request.Request(served + "/api/report", data=b"text=x")
    with pytest.raises(urllib.error.HTTPError) as failure:
        urllib.request.urlopen(form)
    assert failure.value.code == 415
    rebound = urllib.request.Request(served + "/api/zoo", headers={"Host": "attacker.example:8765"})
    with pytest.raises(urllib.error.HTTPError) as failure:
        urllib.request.urlopen(rebound)
    assert failure.value.code == 403

    def broken(self: Any, body: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(web_server.Workbench, "report", broken)
    status, answer = request(served + "/api/report", {"text": TINY, "filename": "a.net"})
    assert status == 500 and "internal error: RuntimeError: boom" in answer["error"]
    monkeypatch.undo()
    assert request(served + "/api/report", {"text": TINY, "filename": "a.net"})[1]["ok"]


@pytest.mark.unit
def test_server_applies_the_limits(served: str) -> None:
    text = "input data: [N, 3, 8, 8]\nrepeat 200000 as i { ReLU r{i} }\n"
    status, answer = request(served + "/api/report", {"text": text, "filename": "big.net"})
    assert status == 200 and not answer["ok"]
    assert "limit" in answer["diagnostics"][0]["text"]


@pytest.mark.unit
def test_server_reads_spec_text_as_the_cli_reads_a_file(
    served: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A byte order mark and Windows line ends, as an editor on Windows saves: the plain report.
    plain = request(served + "/api/report", {"text": TINY, "filename": "mine.net"})
    windows = "\ufeff" + TINY.replace("\n", "\r\n")
    assert request(served + "/api/report", {"text": windows, "filename": "mine.net"}) == plain
    assert plain[1]["ok"]
    # Past max_source_bytes: refused before it is parsed, in the CLI's words for the same file.
    big = TINY + "#" * 2**20 + "\n"
    status, answer = request(served + "/api/report", {"text": big, "filename": "big.net"})
    assert status == 200 and not answer["ok"]
    monkeypatch.chdir(tmp_path)
    Path("big.net").write_text(big)
    assert main(["check", "big.net"]) == 1
    refused = answer["diagnostics"][0]["text"]
    assert "max_source_bytes" in refused and refused in capsys.readouterr().err


@pytest.mark.unit
def test_server_compare(served: str) -> None:
    models = [
        {"text": (ZOO / f"{n}.net").read_text(), "filename": f"{n}.net"} for n in ("alexnet", "resnet18")
    ]
    status, answer = request(served + "/api/compare", {"models": models})
    assert status == 200 and answer["ok"]
    from netspec.compare import compare_graphs

    graphs = [load_graph(ZOO / f"{n}.net") for n in ("alexnet", "resnet18")]
    expected = compare_graphs(["alexnet", "resnet18"], graphs)
    assert answer["rows"] == json.loads(json.dumps([row.to_dict() for row in expected]))
    broken = [models[0], {"text": TINY.replace("ReLU", "Relu"), "filename": "mine.net"}]
    status, answer = request(served + "/api/compare", {"models": broken})
    assert not answer["ok"] and answer["model"] == "mine.net"


@pytest.mark.ort
def test_server_onnx_download(served: str) -> None:
    import onnx

    status, payload = request(served + "/api/onnx", {"text": TINY, "filename": "tiny.net", "batch": 2})
    assert status == 200 and isinstance(payload, bytes)
    model = onnx.load_from_string(payload)
    onnx.checker.check_model(model, full_check=True)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2
    status, answer = request(served + "/api/onnx", {"text": "Relu x", "filename": "bad.net"})
    assert status == 200 and not answer["ok"] and answer["diagnostics"]


def upload(
    url: str, data: bytes, name: str = "model.onnx", batch: int = 1, kind: str = "application/octet-stream"
) -> tuple[int, Any]:
    """POST an ONNX model's bytes to the server as the page does."""
    query = urllib.parse.urlencode({"name": name, "batch": batch})
    target = urllib.request.Request(
        f"{url}/api/onnx-report?{query}", data=data, headers={"Content-Type": kind}
    )
    try:
        with urllib.request.urlopen(target) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as failure:
        return failure.code, json.loads(failure.read())


@pytest.mark.unit
def test_server_reads_an_uploaded_onnx_model(served: str) -> None:
    status, answer = upload(served, ONNX_MODEL.read_bytes(), ONNX_MODEL.name, batch=2)
    assert status == 200 and answer["ok"], answer
    expected = report_data(bind(load_graph(ONNX_MODEL), batch=2), depth=0).to_dict()
    assert answer["report"] == json.loads(json.dumps(expected))
    assert answer["filename"] == ONNX_MODEL.name
    # The editor shows, read-only, the spec `netspec convert` writes for the model.
    from netspec.onnx_import import convert_onnx

    assert answer["spec"] == convert_onnx(ONNX_MODEL).conversion.text


@pytest.mark.unit
def test_server_onnx_upload_with_an_operator_netspec_lacks(served: str) -> None:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="/conv/Conv"),
        helper.make_node("Erf", ["c"], ["y"], name="/gelu/Erf"),
    ]
    graph = helper.make_graph(
        nodes,
        "hand_built",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])],
        [numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    status, answer = upload(served, model.SerializeToString(), "erf.onnx")
    assert status == 200 and answer["ok"], answer
    assert [row["type"] for row in answer["report"]["layers"]] == ["Convolution", "OnnxOp"]
    assert answer["report"]["totals"]["macs"] == 2 * 16 * 9
    # No .net spec can hold Erf: the editor says so instead of showing one.
    assert answer["spec"].startswith("# erf.onnx: an ONNX model, read-only here.")
    assert "(Erf)" in answer["spec"]
    assert any("Erf" in d["text"] and d["severity"] == "warning" for d in answer["diagnostics"])


@pytest.mark.unit
def test_onnx_file_past_the_size_cap_is_an_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import netspec.onnx_import

    size = ONNX_MODEL.stat().st_size
    monkeypatch.setattr(netspec.onnx_import, "MAX_ONNX_BYTES", size - 1)
    assert main(["report", str(ONNX_MODEL), "--format", "html", "-o", "-"]) == 1
    message = capsys.readouterr().err
    assert f"more than {size - 1:,} bytes, the most an ONNX file can hold" in message
    assert "Traceback" not in message


@pytest.mark.unit
def test_server_onnx_upload_errors_and_keeps_serving(served: str) -> None:
    for data in (b"this is not an onnx model", ONNX_MODEL.read_bytes()[:5000]):
        status, answer = upload(served, data, "broken.onnx")
        assert status == 200 and not answer["ok"]
        first = answer["diagnostics"][0]
        assert first["text"].startswith("error: broken.onnx: not a"), first
        assert "ONNX model" in first["message"] and first["line"] == 1 and not first["located"]
    assert upload(served, ONNX_MODEL.read_bytes(), "model.txt")[0] == 422
    assert upload(served, ONNX_MODEL.read_bytes(), batch=0)[0] == 400
    # JSON and form posts go to the JSON routes only; the model route takes bytes only.
    assert upload(served, ONNX_MODEL.read_bytes(), kind="application/json")[0] == 415
    assert upload(served, b"x=1", kind="application/x-www-form-urlencoded")[0] == 415
    status, answer = upload(served, ONNX_MODEL.read_bytes())
    assert status == 200 and answer["ok"]


@pytest.mark.unit
def test_server_refuses_an_oversized_onnx_model() -> None:
    assert web_server.Workbench().max_model_bytes == web_server.MAX_ONNX_BYTES  # the CLI's cap
    size = ONNX_MODEL.stat().st_size
    with serving(max_model_bytes=size - 1) as url:
        status, answer = upload(url, ONNX_MODEL.read_bytes(), ONNX_MODEL.name)
        assert status == 413
        assert answer["error"] == (
            f"{ONNX_MODEL.name} is {size:,} bytes, more than the {size - 1:,} an uploaded ONNX model may be"
        )
        # The size is judged from the headers: a huge upload is refused before its body is read.
        port = int(url.rpartition(":")[2])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.putrequest("POST", "/api/onnx-report?name=huge.onnx")
        connection.putheader("Content-Type", "application/octet-stream")
        connection.putheader("Content-Length", str(2**40))
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 413 and "huge.onnx is 1,099,511,627,776 bytes" in response.read().decode()
        connection.close()
        status, answer = upload(url, (CAFFE.parent / "onnx" / "segmenter_torchscript17.onnx").read_bytes())
        assert status == 200 and answer["ok"]


@pytest.mark.unit
def test_serve_warns_off_loopback_and_refuses_includes() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "netspec", "serve", "--host", "0.0.0.0", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stderr is not None
        warning, address = process.stderr.readline(), process.stderr.readline()
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert "warning: listening on 0.0.0.0, not 127.0.0.1" in warning
    assert re.match(r"netspec serve: http://0\.0\.0\.0:\d+/", address)
    result = subprocess.run(
        [sys.executable, "-m", "netspec", "serve", "--include-path", "/"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "reads only the zoo" in result.stderr


@pytest.mark.unit
def test_serve_on_a_busy_port_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    assert main(["serve", "--port", "70000"]) == 2
    assert "--port must be from 0 to 65535" in capsys.readouterr().err
