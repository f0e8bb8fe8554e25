"""How many nodes Netron draws for netspec's ONNX files: each zoo model named is compiled as
``netspec compile`` writes it, served by Netron (PyPI ``netron``) on 127.0.0.1, opened in
headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by Selenium), and the
graph nodes in Netron's drawing are counted against the model's node count.

    python3 -m venv /tmp/netron && /tmp/netron/bin/pip install netron selenium '.[test]'
    /tmp/netron/bin/python tools/netron_nodes.py resnet50 googlenet [--screenshot DIR]

A file Netron cannot read (such as one with a repeated top-level ``graph`` field, which it
reads as only the last one) draws 0 nodes. Exit code 1 when any count differs.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Netron draws each graph node as an SVG group of this class.
NODE_SELECTOR = "g.node.graph-node"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def drawn_nodes(model_path: Path, screenshot: Path | None, timeout: float = 120.0) -> int:
    import netron
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    port = free_port()
    netron.start(str(model_path), address=("127.0.0.1", port), browse=False)
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1600,1200"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        deadline = time.monotonic() + timeout
        accepted = False
        count, stable_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            if not accepted:
                # Netron asks once for consent to its usage statistics before it shows a model.
                for button in driver.find_elements("css selector", "button"):
                    if button.is_displayed() and button.text.strip() == "Accept":
                        button.click()
                        accepted = True
            now = len(driver.find_elements("css selector", NODE_SELECTOR))
            if now != count:
                count, stable_since = now, time.monotonic()
            elif count > 0 and time.monotonic() - stable_since > 3.0:
                break
            time.sleep(0.5)
        if screenshot is not None:
            driver.save_screenshot(str(screenshot))
        return max(count, 0)
    finally:
        driver.quit()
        netron.stop(("127.0.0.1", port))


def main() -> int:
    import onnx

    from netspec.cli import main as netspec

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="+", help="zoo model names")
    parser.add_argument("--screenshot", type=Path, help="save a screenshot of each drawing in this folder")
    args = parser.parse_args()
    failures = 0
    print("| model | ONNX nodes | drawn by Netron |")
    print("|---|---:|---:|")
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.models:
            path = Path(scratch) / f"{name}.onnx"
            assert netspec(["compile", name, "-o", str(path), "--quiet"]) == 0
            nodes = len(onnx.load(path, load_external_data=False).graph.node)
            shot = args.screenshot / f"netron_{name}.png" if args.screenshot else None
            drawn = drawn_nodes(path, shot)
            failures += drawn != nodes
            print(f"| {name} | {nodes} | {drawn} |", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
