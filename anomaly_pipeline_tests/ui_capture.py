"""Headless Chromium driven over the DevTools protocol, for looking at a running Dagster UI: open a
page, wait until its scripts rendered something, click a button, save a screenshot.

Used by the `dagster dev` smoke test and `bench/ui_screenshots.py`. The protocol speaks JSON over a
websocket (`websockets`, which dagster-webserver's uvicorn brings).
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import requests
from websockets.sync.client import connect

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    "--hide-scrollbars", "--remote-debugging-port=0",
]  # fmt: skip
WINDOW = (1400, 1000)
START_TIMEOUT_SECONDS = 30


def find_chromium() -> str | None:
    """The Chromium binary on PATH (Debian's `chromium`), or None."""
    return next((path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None)


class Browser:
    """One headless Chromium page: `with Browser() as page: page.open(url); page.screenshot(path)`."""

    def __enter__(self) -> "Browser":
        chromium = find_chromium()
        if chromium is None:
            raise RuntimeError("Chromium is not installed (apt-get install -y chromium)")
        # Chromium's helper processes may still write to the profile as it exits: cleanup must not fail the test
        self._profile = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)
        self._process = subprocess.Popen(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile.name}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        port = self._debugging_port()
        (page,) = [t for t in requests.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json() if t["type"] == "page"]
        self._socket = connect(page["webSocketDebuggerUrl"], max_size=None)
        self._ids = itertools.count(1)
        width, height = WINDOW
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        return self

    def __exit__(self, *exc) -> None:
        self._socket.close()
        self._process.terminate()
        self._process.wait(timeout=30)
        self._profile.cleanup()

    def _debugging_port(self) -> int:
        active = Path(self._profile.name) / "DevToolsActivePort"  # Chromium writes its port here
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not (active.exists() and active.read_text().strip()):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Chromium did not start its DevTools endpoint")
            time.sleep(0.2)
        return int(active.read_text().split()[0])

    def call(self, method: str, **params) -> dict:
        """One DevTools command; its result (events in between are skipped)."""
        call_id = next(self._ids)
        self._socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv())
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60.0):
        """Poll until `expression` is truthy in the page; its value (raises on timeout)."""
        deadline = time.monotonic() + timeout
        while not (value := self.evaluate(expression)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the page never satisfied: {expression}")
            time.sleep(0.5)
        return value

    def open(self, url: str, ready: str = "document.readyState === 'complete'", timeout: float = 60.0) -> None:
        """Navigate to `url` and wait until the `ready` expression holds."""
        self.call("Page.navigate", url=url)
        time.sleep(0.5)
        self.wait_for(ready, timeout)

    def click_text(self, label: str, nth: int = 0) -> None:
        """Click the `nth` innermost element whose whole text is `label` (a button, a link, ...)."""
        clicked = self.evaluate(
            f"(() => {{ const hits = {_innermost(label)}; const el = hits[{nth}];"
            " if (el) { el.click(); return true; } return false; })()"
        )
        if not clicked:
            raise LookupError(f"nothing to click labelled {label!r} (#{nth})")

    @staticmethod
    def shows(text: str) -> str:
        """A JavaScript expression: does the page's text contain `text`?"""
        return f"document.body.innerText.includes({json.dumps(text)})"

    @staticmethod
    def has_text(label: str) -> str:
        """A JavaScript expression: is an element with the whole text `label` on the page?"""
        return f"{_innermost(label)}.length > 0"

    def wait_for_inline_png(self, timeout: float = 30.0) -> list[list[int]]:
        """Wait until the page shows a decoded inline (data URI) PNG; the [width, height] of each."""
        return self.wait_for(
            "[...document.querySelectorAll('img[src^=\"data:image/png;base64,\"]')]"
            ".filter(i => i.complete && i.naturalWidth > 0).map(i => [i.naturalWidth, i.naturalHeight])",
            timeout,
        )

    def screenshot(self, path: str | Path, height: int | None = None) -> None:
        """Save the window as a PNG; `height` makes the window that tall first (the Dagster UI
        scrolls inside its own panes, so a taller window is what shows more of a page)."""
        width, normal = WINDOW
        if height:
            self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
            time.sleep(1.5)  # re-layout
        Path(path).write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        if height:
            self.call("Emulation.setDeviceMetricsOverride", width=width, height=normal, deviceScaleFactor=1, mobile=False)

def _innermost(label: str) -> str:
    """JavaScript: the elements whose text is `label` and none of whose children's is."""
    text = json.dumps(label)
    return (
        f"[...document.querySelectorAll('body *')].filter(e => e.innerText && e.innerText.trim() === {text}"
        f" && ![...e.children].some(c => c.innerText && c.innerText.trim() === {text}))"
    )
