"""A served explorer and a headless Chromium driven over the DevTools protocol (stdlib + ``websockets``).

Used by ``test_browser.py`` and, to refresh ``docs/screenshots/``, as a script::

    VITQ_EXPLORER_MODEL=vit_tiny_cifar10 .venv/bin/python tests/explorer_app/browser.py docs/screenshots
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
import io
import itertools
import json
import os
from pathlib import Path
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any
import urllib.request

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "explorer_app" / "app.py"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def find_chromium() -> str | None:
    """The Chromium binary, or ``None``."""
    for c in CHROMIUM_CANDIDATES:
        if Path(c).is_file() and os.access(c, os.X_OK):
            return c
    return shutil.which("chromium")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - 127.0.0.1 only
        return int(r.status), r.read()


def wait_http_200(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> float:
    """Poll ``url`` until it answers 200; the seconds it took."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            if _get(url)[0] == 200:
                return time.perf_counter() - start
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer 200 within {timeout} s")


@contextmanager
def served_app(env: dict[str, str], timeout: float = 120.0) -> Iterator[tuple[str, float]]:
    """``streamlit run explorer_app/app.py`` on a free port; yields (base URL, seconds to the first HTTP 200)."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    log = tempfile.TemporaryFile()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http_200(base + "/_stcore/health", timeout, proc)
        wait_http_200(base + "/", timeout, proc)
        yield base, time.perf_counter() - start
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()


class Browser:
    """A minimal synchronous DevTools-protocol client of one page target."""

    def __init__(self, ws_url: str) -> None:
        from websockets.sync.client import connect

        self._conn = connect(ws_url, max_size=64 * 2**20, open_timeout=30)
        self._ws = self._conn.__enter__()
        self._ids = itertools.count(1)

    def call(self, method: str, timeout: float = 60.0, **params: Any) -> dict[str, Any]:
        """Send a command and wait for its reply (events are skipped)."""
        i = next(self._ids)
        self._ws.send(json.dumps({"id": i, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(self._ws.recv(timeout=max(deadline - time.monotonic(), 0.1)))
            if msg.get("id") == i:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg.get("result", {})
                return result

    def js(self, expr: str) -> Any:
        """Evaluate ``expr`` in the page and return its value."""
        out = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        return out.get("result", {}).get("value")

    def wait_for(self, expr: str, timeout: float = 120.0, what: str = "") -> float:
        """Poll the JS ``expr`` until truthy; the seconds it took."""
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            if self.js(expr):
                return time.perf_counter() - start
            time.sleep(0.25)
        raise TimeoutError(f"waited {timeout} s for {what or expr}")

    def idle(self, timeout: float = 900.0) -> None:
        """Wait until Streamlit has finished the current run (its running icon is gone for a second)."""
        running = "!!document.querySelector('[data-testid=\"stStatusWidgetRunningIcon\"]')"
        try:
            self.wait_for(running, 5.0, "the app to start running")
        except TimeoutError:
            pass
        deadline = time.perf_counter() + timeout
        quiet_since: float | None = None
        while time.perf_counter() < deadline:
            if self.js(running):
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.perf_counter()
            elif time.perf_counter() - quiet_since > 1.0:
                return
            time.sleep(0.2)
        raise TimeoutError(f"the app was still running after {timeout} s")

    def click_button(self, label: str, timeout: float = 120.0) -> None:
        """Click the first enabled button whose text contains ``label`` (waiting for it to appear)."""
        find = (
            "[...document.querySelectorAll('button')].find(e => !e.disabled && e.innerText.includes("
            + json.dumps(label)
            + "))"
        )
        self.wait_for("!!" + find, timeout, f"a button labelled {label!r}")
        self.js(f"{find}.click()")

    def goto_page(self, title: str, timeout: float = 60.0) -> None:
        """Follow the sidebar link of page ``title`` (client-side: the session is kept)."""
        find = (
            "[...document.querySelectorAll('[data-testid=\"stSidebarNavLink\"]')].find("
            "e => e.innerText.trim().endsWith(" + json.dumps(title) + "))"
        )
        self.wait_for("!!" + find, timeout, f"the sidebar link {title!r}")
        self.js(f"{find}.click()")

    def type_into(self, label: str, text: str, timeout: float = 60.0) -> None:
        """Replace the text of the input whose accessible label is ``label`` with ``text``, as a person does.

        Focus, select all, type (``Input.insertText``), then Tab out so Streamlit commits the value.
        """
        find = f"document.querySelector('input[aria-label={json.dumps(label)}]')"
        self.wait_for("!!" + find, timeout, f"an input labelled {label!r}")
        self.js(f"{find}.focus(); {find}.select()")
        self.call("Input.insertText", text=text)
        time.sleep(0.2)
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key="Tab", code="Tab", windowsVirtualKeyCode=9)
        time.sleep(0.3)

    def input_value(self, label: str) -> str:
        """The current text of the input labelled ``label``."""
        return str(self.js(f"document.querySelector('input[aria-label={json.dumps(label)}]').value"))

    def upload_file(self, path: Path, index: int = 0, timeout: float = 60.0) -> None:
        """Put ``path`` into the ``index``-th file input of the page (what a drop or a file dialog does) and
        wait until Streamlit lists it as uploaded (a file chip without a spinner)."""
        self.wait_for(f"document.querySelectorAll('input[type=file]').length > {index}", 60, "a file input")
        ref = self.call(
            "Runtime.evaluate", expression=f"document.querySelectorAll('input[type=file]')[{index}]"
        )["result"]
        if "objectId" not in ref:
            raise LookupError(f"no file input #{index}")
        self.call("DOM.setFileInputFiles", files=[str(path)], objectId=ref["objectId"])
        chips = "document.querySelectorAll('[data-testid=\"stFileChipName\"]').length"
        self.wait_for(
            f"{chips} > 0 && !document.querySelector('[data-testid=\"stFileChipIconSpinner\"]')",
            timeout,
            f"the upload of {path.name}",
        )

    def record_progress(self) -> None:
        """From now on, keep every text any ``st.progress`` bar shows (``progress_seen`` returns them).

        A MutationObserver, so a bar that comes and goes between two polls is still seen.
        """
        self.js(
            "window.__vitqProgress = []; new MutationObserver(() => document.querySelectorAll("
            "'[data-testid=\"stProgress\"]').forEach(e => { const t = e.innerText;"
            " if (t && window.__vitqProgress.at(-1) !== t) window.__vitqProgress.push(t); }))"
            ".observe(document.body, {subtree: true, childList: true, characterData: true}); true"
        )

    def progress_seen(self) -> list[str]:
        """The progress texts seen since :meth:`record_progress`."""
        return [str(t) for t in self.js("window.__vitqProgress || []") or []]

    def text(self) -> str:
        """The page's visible text."""
        return str(self.js("document.body.innerText"))

    def alerts(self, kind: str) -> list[str]:
        """Texts of Streamlit's ``st.error``/``st.success``/``st.info``/``st.warning`` boxes (``kind``)."""
        found = self.js(
            '[...document.querySelectorAll(\'[data-testid="stAlertContentError"],'
            '[data-testid="stAlertContentSuccess"],[data-testid="stAlertContentInfo"],'
            '[data-testid="stAlertContentWarning"]\')].filter(e => e.dataset.testid.endsWith('
            + json.dumps(kind.capitalize())
            + ")).map(e => e.innerText)"
        )
        return [str(t) for t in found or []]

    def click_plot_point(self, label: str) -> None:
        """Click, with real mouse events, the chart marker under the text label ``label`` (a plotly point)."""
        where = self.js(
            "(() => { const t = [...document.querySelectorAll('.js-plotly-plot .textpoint text')].find("
            "e => e.textContent === " + json.dumps(label) + "); if (!t) return null;"
            " const tr = t.getBoundingClientRect(); const cx = tr.x + tr.width / 2;"
            " let best = null; for (const p of document.querySelectorAll('.js-plotly-plot .scatterlayer .points path')) {"
            " const r = p.getBoundingClientRect(); const x = r.x + r.width / 2, y = r.y + r.height / 2;"
            " const d = Math.abs(x - cx) + Math.abs(y - tr.bottom);"
            " if (y > tr.y && (!best || d < best[2])) best = [x, y, d]; } return best; })()"
        )
        if not where:
            raise LookupError(f"no chart point labelled {label!r}")
        x, y = float(where[0]), float(where[1])
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        time.sleep(0.3)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def screenshot(self, path: Path | None = None) -> bytes:
        """A PNG of the viewport (optionally written to ``path``), once every Plotly chart has drawn."""
        self.wait_for(
            "[...document.querySelectorAll('[data-testid=\"stPlotlyChart\"]')]"
            ".every(e => e.querySelector('.main-svg'))",
            60,
            "the charts to draw",
        )
        time.sleep(0.5)
        data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return data

    def close(self) -> None:
        """Close the connection."""
        self._conn.__exit__(None, None, None)


@contextmanager
def chromium(width: int = 1400, height: int = 1800) -> Iterator[Browser]:
    """A headless Chromium with one blank page, driven by a :class:`Browser`."""
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("chromium is not installed (apt-get install -y chromium chromium-driver)")
    profile = tempfile.mkdtemp(prefix="vitq-chromium-")
    proc = subprocess.Popen(
        [
            exe,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            f"--window-size={width},{height}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    browser: Browser | None = None
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.is_file() or not port_file.read_text().strip():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(_get(f"http://127.0.0.1:{port}/json/list", 10)[1])
        page = next(t for t in targets if t.get("type") == "page")
        browser = Browser(page["webSocketDebuggerUrl"])
        browser.call("Page.enable")
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        yield browser
    finally:
        if browser is not None:
            browser.close()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        shutil.rmtree(profile, ignore_errors=True)


def pixel_stats(png: bytes) -> tuple[float, float]:
    """(variance of the grey levels, fraction of non-white pixels) of a PNG."""
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)
    return float(img.var()), float((img < 245).mean())


PLOT_READY = "document.querySelectorAll('.js-plotly-plot .scatterlayer .trace').length > 0"


def walk_and_capture(base: str, out_dir: Path, *, full: bool = True) -> dict[str, Any]:
    """Open the app, evaluate the baselines, and screenshot pages into ``out_dir``; timings and files.

    With ``full`` it also calibrates, measures sensitivity, runs a search and applies it, so every page
    shows content (what ``docs/screenshots/`` holds).
    """
    shots: dict[str, Any] = {}
    with chromium() as b:
        start = time.perf_counter()
        b.call("Page.navigate", url=base + "/")
        b.wait_for(
            "[...document.querySelectorAll('button')].some(e => e.innerText.includes('Apply'))", 120, "form"
        )
        shots["first_page_interactive_s"] = time.perf_counter() - start
        if full:
            b.click_button("Load model & data")
            b.idle()
            b.click_button("Calibrate")
            b.idle()
            b.screenshot(out_dir / "model_data.png")
            b.goto_page("Layers")
            b.idle()
            b.click_button("Measure sensitivity")
            b.idle()
            b.screenshot(out_dir / "layers.png")
            b.goto_page("Suggestions")
            b.idle()
            b.click_button("Run search")
            b.idle()
            b.click_button("Apply Greedy MP suggestion")
            b.idle()
            b.screenshot(out_dir / "suggestions.png")
        b.goto_page("Trade-offs")
        b.idle()
        b.click_button("Evaluate uniform baselines")
        b.idle(900)
        if full:
            b.click_button("Evaluate current config")
            b.idle(900)
        shots["chart_s"] = b.wait_for(PLOT_READY, 120, "the trade-off chart")
        time.sleep(1.0)
        png = b.screenshot(out_dir / "tradeoffs.png")
        shots["tradeoffs_png"] = png
        if not full:  # a click on a point loads its config (plotly selection event -> rerun)
            b.click_plot_point("W4A4")
            b.idle()
            b.wait_for("document.body.innerText.includes('into the Layers table.')", 60, "the point to load")
            shots["clicked"] = b.js("document.body.innerText")
        if full:
            b.js(
                "[...document.querySelectorAll('h1,h2,h3')].find(e => e.innerText.includes('Per-layer sensitivity'))"
                ".scrollIntoView()"
            )
            time.sleep(1.0)
            b.screenshot(out_dir / "tradeoffs_sensitivity_layernorm.png")
            b.goto_page("Export")
            b.idle()
            b.click_button("Build QONNX")
            b.idle(900)
            b.screenshot(out_dir / "export.png")
    return shots


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")
    with served_app({}) as (url, ready_s):
        print(f"server answered 200 after {ready_s:.1f} s")
        info = walk_and_capture(url, out, full=True)
        print({k: v for k, v in info.items() if not isinstance(v, bytes)})
