"""The HTML report and the editor of ``netspec serve`` in a real browser: headless Chromium
(Debian's ``chromium`` and ``chromium-driver``) driven by Selenium.

Without a browser these tests are skipped, unless NETSPEC_REQUIRE_BROWSER=1 (as in .ci/run),
where a missing browser is a failure."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from netspec.compiler import load_graph
from netspec.report import report_data
from netspec.typed import bind
from netspec.web import render_html
from netspec.web import server as web_server

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "zoo"
CAFFE = Path(__file__).resolve().parent / "data" / "caffe"
ONNX_MODEL = Path(__file__).resolve().parent / "data" / "onnx" / "resnet_bottleneck_torchscript17.onnx"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WAIT_S = 30.0


def _browser_or_skip() -> tuple[str, str]:
    required = os.environ.get("NETSPEC_REQUIRE_BROWSER") == "1"
    browser = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        browser = None
    if browser is None or driver is None:
        message = "needs selenium, chromium and chromedriver (apt-get install chromium chromium-driver)"
        if required:
            pytest.fail(message)
        pytest.skip(message)
    return browser, driver


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    binary, driver_path = _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1500,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(condition: Callable[[], Any], timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def graph_ready(driver: Any) -> bool:
    return bool(
        driver.execute_script(
            "const b = document.querySelector('.ns-graph-box'); return b && b.dataset.ready === 'true'"
        )
    )


def texts(driver: Any, selector: str, attribute: str = "data-name") -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.getAttribute(arguments[1]))",
        selector,
        attribute,
    )


def severe_console_messages(driver: Any) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


@pytest.fixture(scope="module")
def resnet50_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    report = report_data(bind(load_graph(ZOO / "resnet50.net")), depth=0)
    path = tmp_path_factory.mktemp("html") / "resnet50.html"
    path.write_text(render_html(report, source="zoo/resnet50.net"), encoding="utf-8")
    return path, report.to_dict()


def open_report(driver: Any, path: Path) -> None:
    driver.get(path.as_uri())
    assert wait_for(lambda: graph_ready(driver)), "the graph was not drawn"


def test_report_rows_graph_and_charts(browser: Any, resnet50_report: tuple[Path, dict[str, Any]]) -> None:
    path, data = resnet50_report
    open_report(browser, path)
    names = [row["name"] for row in data["layers"]]
    assert texts(browser, "tr.ns-layer") == names
    assert texts(browser, "tr.ns-scope") == [row["name"] for row in data["scopes"]]
    nodes = texts(browser, ".ns-graph .node-layer", "data-id")
    assert len(nodes) == len(names) == data["totals"]["layers"]
    assert len(texts(browser, ".ns-graph .node-input", "data-id")) == len(data["inputs"])
    assert len(texts(browser, ".ns-graph .ns-cluster", "data-id")) == len(data["scopes"])
    edge_labels = browser.execute_script(
        "return [...document.querySelectorAll('.ns-edge-label')].map(e => e.textContent)"
    )
    assert "1x64x56x56" in edge_labels and "1x2048x7x7" in edge_labels
    assert len(texts(browser, ".ns-bar", "data-id")) == len(names)
    assert len(texts(browser, ".ns-dot", "data-id")) == sum(1 for r in data["layers"] if r["receptive_field"])
    totals = browser.execute_script("return document.querySelector('[data-total=MACs]').textContent")
    assert totals == f"{data['totals']['macs']:,}"
    assert severe_console_messages(browser) == []


def test_report_folding_matches_the_text_report_depth(
    browser: Any, resnet50_report: tuple[Path, dict[str, Any]]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    path, data = resnet50_report
    open_report(browser, path)
    everything = len(texts(browser, "tr.ns-layer"))
    layer1 = next(s for s in data["scopes"] if s["name"] == "layer1")
    browser.find_element(By.CSS_SELECTOR, 'tr[data-name="layer1"] .ns-fold').click()
    assert len(texts(browser, "tr.ns-layer")) == everything - layer1["layer_count"]
    assert texts(browser, "tr.ns-folded") == ["layer1"]
    assert wait_for(lambda: graph_ready(browser))
    assert len(texts(browser, ".ns-graph .node-layer", "data-id")) == everything - layer1["layer_count"]
    assert len(texts(browser, ".ns-graph .node-scope", "data-id")) == 1
    browser.find_element(By.CSS_SELECTOR, 'tr[data-name="layer1"] .ns-fold').click()
    assert len(texts(browser, "tr.ns-layer")) == everything
    analysis = bind(load_graph(ZOO / "resnet50.net"))
    for depth in (1, 2):
        Select(browser.find_element(By.CSS_SELECTOR, ".ns-depth")).select_by_value(str(depth))
        shown = texts(browser, "tr.ns-layer, tr.ns-folded")
        assert shown == [row.name for row in report_data(analysis, depth=depth).rows]


def test_report_sort_filter_and_selection(browser: Any, resnet50_report: tuple[Path, dict[str, Any]]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    path, data = resnet50_report
    open_report(browser, path)
    browser.find_element(By.CSS_SELECTOR, 'th[data-key="macs"]').click()
    by_macs = sorted(data["layers"], key=lambda r: -r["macs"])
    assert texts(browser, "tr.ns-layer")[0] == by_macs[0]["name"]
    browser.find_element(By.CSS_SELECTOR, 'th[data-key="order"]').click()
    box = browser.find_element(By.CSS_SELECTOR, ".ns-filter")
    box.send_keys("downsample")
    shown = texts(browser, "tr.ns-layer")
    assert shown == [r["name"] for r in data["layers"] if "downsample" in r["name"]]
    # The filter looks into folded scopes too.
    Select(browser.find_element(By.CSS_SELECTOR, ".ns-depth")).select_by_value("2")
    assert texts(browser, "tr.ns-layer") == shown
    assert texts(browser, "tr.ns-folded") == []
    box.clear()
    box.send_keys(" ")  # an input event with an empty filter
    assert "layer1.0" in texts(browser, "tr.ns-folded")
    Select(browser.find_element(By.CSS_SELECTOR, ".ns-depth")).select_by_value("0")
    # Clicking a graph node selects its row, clicking a row selects its node.
    node = browser.find_element(By.CSS_SELECTOR, '.ns-graph .node-layer[data-id="l40"]')
    browser.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", node)
    assert texts(browser, "tr.ns-selected") == [data["layers"][40]["name"]]
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-name="conv1"]')
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
    row.click()
    assert texts(browser, ".ns-graph .ns-selected", "data-id") == ["l0"]


def test_report_of_a_caffe_file(browser: Any, tmp_path: Path) -> None:
    report = report_data(bind(load_graph(CAFFE / "bvlc_alexnet.prototxt")), depth=0)
    path = tmp_path / "alexnet.html"
    path.write_text(render_html(report), encoding="utf-8")
    open_report(browser, path)
    assert texts(browser, "tr.ns-layer") == [r.name for r in report.rows]
    assert len(texts(browser, ".ns-graph .node-layer", "data-id")) == len(report.rows)


# The editor of `netspec serve`, served from this process.


def start_server(**options: Any) -> Iterator[str]:
    server = web_server.make_server("127.0.0.1", 0, **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    yield from start_server()


def open_editor(driver: Any, url: str) -> None:
    driver.get(url)
    assert wait_for(lambda: graph_ready(driver) and texts(driver, "tr.ns-layer")), "the report did not load"


def zoo_rows(name: str) -> list[str]:
    return [r.name for r in report_data(bind(load_graph(ZOO / f"{name}.net")), depth=0).rows]


def test_editor_loads_zoo_models(browser: Any, served: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    open_editor(browser, served)
    assert texts(browser, "tr.ns-layer") == zoo_rows("resnet18")
    Select(browser.find_element(By.ID, "zoo")).select_by_value("alexnet")
    expected = zoo_rows("alexnet")
    assert wait_for(lambda: texts(browser, "tr.ns-layer") == expected)
    assert wait_for(
        lambda: graph_ready(browser) and len(texts(browser, ".node-layer", "data-id")) == len(expected)
    )
    # The served page lays graphs out in a Web Worker (the report file, in the page).
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert served + "vendor/elk-worker.min.js" in resources
    assert [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")] == []


def test_editor_shows_a_typo_at_its_line_within_a_second(browser: Any, served: str) -> None:
    open_editor(browser, served + "?model=resnet18")
    lines = (ZOO / "resnet18.net").read_text().splitlines()
    target = next(i for i, line in enumerate(lines, 1) if line.startswith("let blocks"))
    typo = "Convolution oops { num_outptu: 3 }\n"
    browser.execute_script(
        "const view = netspecEditor.editor; const line = view.state.doc.line(arguments[0]);"
        "view.dispatch({changes: {from: line.from, insert: arguments[1]}});",
        target,
        typo,
    )
    started = time.monotonic()
    shown = wait_for(lambda: texts(browser, ".ns-diagnostic", "data-line"), timeout=1.0)
    elapsed = time.monotonic() - started
    assert shown == [str(target)], f"no diagnostic within a second ({elapsed:.2f} s)"
    marked = wait_for(
        lambda: browser.execute_script(
            "return [...document.querySelectorAll('.cm-lintRange-error')].map(e =>"
            " [...e.closest('.cm-content').children].indexOf(e.closest('.cm-line')) + 1)"
        ),
        timeout=2.0,
    )
    assert marked == [target]
    column = typo.index("num_outptu") + 1
    message = browser.execute_script("return document.querySelector('.ns-diagnostic').textContent")
    assert message.startswith(
        f"resnet18.net:{target}:{column}: error: Convolution has no parameter 'num_outptu'"
    )
    assert "did you mean 'num_output'" in message
    # Fixing it brings the report back.
    browser.execute_script(
        "const view = netspecEditor.editor; const line = view.state.doc.line(arguments[0]);"
        "view.dispatch({changes: {from: line.from, to: line.to + 1, insert: ''}});",
        target,
    )
    assert wait_for(lambda: not texts(browser, ".ns-diagnostic", "data-line"), timeout=5.0)
    status = browser.execute_script("return document.getElementById('status').textContent")
    assert status.startswith("✓ 68 layers")


def test_editor_report_follows_the_text(browser: Any, served: str) -> None:
    open_editor(browser, served + "?model=lenet5")
    before = texts(browser, "tr.ns-layer")
    browser.execute_script(
        "const view = netspecEditor.editor;"
        "view.dispatch({changes: {from: view.state.doc.length, insert: '\\nReLU extra_relu\\n'}});"
    )
    assert wait_for(lambda: texts(browser, "tr.ns-layer") == [*before, "extra_relu"], timeout=5.0)
    assert wait_for(
        lambda: graph_ready(browser) and len(texts(browser, ".node-layer", "data-id")) == len(before) + 1
    )


def test_editor_compare_view(browser: Any, served: str) -> None:
    from selenium.webdriver.common.by import By

    open_editor(browser, served + "?model=resnet18")
    browser.find_element(By.ID, "tab-compare").click()
    for name in ("alexnet", "vgg11"):
        browser.find_element(By.CSS_SELECTOR, f'.ns-compare-model[value="{name}"]').click()
    browser.find_element(By.ID, "compare-run").click()
    rows = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "tr.ns-compare-row"), timeout=20.0)
    assert [row.find_element(By.TAG_NAME, "td").text for row in rows] == ["ResNet-18", "AlexNet", "VGG-11"]
    assert len(browser.find_elements(By.CSS_SELECTOR, ".ns-efficiency .ns-bubble")) == 3
    reference = json.loads(json.dumps(bind(load_graph(ZOO / "vgg11.net")).counts.totals.params))
    assert rows[2].find_elements(By.TAG_NAME, "td")[1].text == browser.execute_script(
        "return NetspecReport.humanCount(arguments[0])", reference
    )


def choose_file(driver: Any, path: Path) -> None:
    """Pick ``path`` in the page's file chooser, as a user does (the input is shown for it)."""
    from selenium.webdriver.common.by import By

    chooser = driver.find_element(By.ID, "upload")
    driver.execute_script("arguments[0].style.display = 'block'", chooser)
    chooser.send_keys(str(path))


def status_text(driver: Any) -> str:
    return driver.execute_script("return document.getElementById('status').textContent")


def test_editor_reads_an_uploaded_onnx_model(browser: Any, served: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    report = report_data(bind(load_graph(ONNX_MODEL)), depth=0)
    names = [row.name for row in report.rows]
    open_editor(browser, served + "?model=lenet5")
    choose_file(browser, ONNX_MODEL)
    assert wait_for(lambda: texts(browser, "tr.ns-layer") == names, timeout=10.0)
    assert wait_for(
        lambda: graph_ready(browser) and len(texts(browser, ".node-layer", "data-id")) == len(names)
    )
    assert len(texts(browser, "rect.ns-bar", "data-id")) == len(names)
    totals = browser.execute_script("return document.querySelector('[data-total=MACs]').textContent")
    assert totals == f"{report.totals.macs:,}"
    assert status_text(browser).startswith(f"✓ ONNX · {len(names)} layers")
    # The editor holds the spec `netspec convert` writes, read-only.
    assert browser.find_element(By.ID, "filename").text == ONNX_MODEL.name
    assert browser.find_element(By.ID, "readonly").is_displayed()
    text = browser.execute_script("return netspecEditor.editor.state.doc.toString()")
    assert text.startswith(f"# Converted from {ONNX_MODEL.name} by netspec")
    assert browser.execute_script("return netspecEditor.editor.state.readOnly") is True
    assert browser.find_element(By.ID, "download").get_attribute("disabled") is not None

    # Bad bytes: the error on the page, the last report kept, the server still there.
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07 this is not a model")
    choose_file(browser, broken)
    assert wait_for(lambda: "broken.onnx: not a" in status_text(browser), timeout=10.0), status_text(browser)
    diagnostics = browser.execute_script(
        "return [...document.querySelectorAll('.ns-diagnostic')].map(e => e.textContent)"
    )
    assert len(diagnostics) == 1 and "error: broken.onnx: not a" in diagnostics[0]
    assert texts(browser, "tr.ns-layer") == names
    # A zoo model makes the editor a spec editor again.
    Select(browser.find_element(By.ID, "zoo")).select_by_value("alexnet")
    assert wait_for(lambda: texts(browser, "tr.ns-layer") == zoo_rows("alexnet"), timeout=10.0)
    assert browser.execute_script("return netspecEditor.editor.state.readOnly") is False
    assert not browser.find_element(By.ID, "readonly").is_displayed()
    assert severe_console_messages(browser) == []


def test_editor_refuses_an_oversized_onnx_model(browser: Any) -> None:
    size = ONNX_MODEL.stat().st_size
    message = f"{ONNX_MODEL.name} is {size:,} bytes, more than the {size - 1:,} an uploaded ONNX model may be"
    with contextmanager(start_server)(max_model_bytes=size - 1) as url:
        open_editor(browser, url + "?model=lenet5")
        before = texts(browser, "tr.ns-layer")
        choose_file(browser, ONNX_MODEL)
        assert wait_for(lambda: status_text(browser) == message, timeout=5.0), status_text(browser)
        assert texts(browser, "tr.ns-layer") == before
