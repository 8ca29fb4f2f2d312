"""Headless Chromium driven over the DevTools protocol, for loopback page tests.

Debian's chromium is started with the flags that keep it off the network
(background networking, component updates, sync and QUIC off; every host name
but loopback unresolvable), in a throwaway profile, and stopped with its whole
process group so no renderer outlives the test.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from websockets.sync.client import ClientConnection, connect

type Json = bool | int | float | str | list[Json] | dict[str, Json] | None

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
LISTENING = re.compile(r"DevTools listening on (ws://127\.0\.0\.1:(\d+)/\S+)")


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """One headless Chromium with one page, controlled over CDP."""

    def __init__(
        self,
        profile_dir: Path,
        width: int = 1400,
        height: int = 1800,
        loopback_names: tuple[str, ...] = (),
    ) -> None:
        """``loopback_names``: host names that resolve to 127.0.0.1 (as a DNS-rebinding
        site's would); every other name but loopback is unresolvable."""
        binary = chromium_path()
        if binary is None:
            raise RuntimeError(
                "chromium is not installed; `make test` installs Debian's chromium "
                "(apt-get install chromium) before the suite"
            )
        self.proc = subprocess.Popen(
            [
                binary,
                *CHROMIUM_FLAGS,
                "--host-resolver-rules="
                + "".join(f"MAP {name} 127.0.0.1, " for name in loopback_names)
                + "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                f"--user-data-dir={profile_dir}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._ids = itertools.count(1)
        try:
            port = self._devtools_port(timeout=30)
            self.ws: ClientConnection = connect(self._page_socket(port), max_size=None)
        except BaseException:
            self.close()
            raise

    def _devtools_port(self, timeout: float) -> int:
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            match = LISTENING.search(line)
            if match:
                threading.Thread(target=self._drain, daemon=True).start()
                return int(match.group(2))
        raise RuntimeError("chromium did not open its DevTools port:\n" + "".join(seen[-20:]))

    def _drain(self) -> None:
        """Keep reading chromium's stderr so a chatty browser never blocks on a full pipe."""
        assert self.proc.stderr is not None
        with contextlib.suppress(ValueError, OSError):
            for _ in self.proc.stderr:
                pass

    @staticmethod
    def _page_socket(port: int) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
            targets = json.loads(reply.read())
        pages = [t for t in targets if t.get("type") == "page"]
        if not pages:
            raise RuntimeError(f"chromium has no page target: {targets}")
        return str(pages[0]["webSocketDebuggerUrl"])

    def call(self, method: str, params: dict[str, Json] | None = None, timeout: float = 30) -> Json:
        request_id = next(self._ids)
        self.ws.send(json.dumps({"id": request_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") != request_id:
                continue  # an event
            if "error" in message:
                raise RuntimeError(f"{method}: {message['error']}")
            result: Json = message.get("result")
            return result

    def navigate(self, url: str) -> None:
        self.call("Page.enable")
        self.call("Page.navigate", {"url": url})

    def evaluate(self, expression: str) -> Json:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if not isinstance(result, dict):
            return None
        inner = result.get("result")
        return inner.get("value") if isinstance(inner, dict) else None

    def wait_until(self, expression: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate(expression) is True:
                return
            time.sleep(0.25)
        text = self.evaluate("document.body ? document.body.innerText.slice(0, 2000) : ''")
        raise TimeoutError(f"page never satisfied {expression!r}; it shows:\n{text}")

    def screenshot(self, path: Path) -> bytes:
        result = self.call("Page.captureScreenshot", {"format": "png"})
        if not isinstance(result, dict) or not isinstance(result.get("data"), str):
            raise RuntimeError(f"no screenshot data: {result}")
        png = base64.b64decode(str(result["data"]))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        return png

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def __enter__(self) -> Browser:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
