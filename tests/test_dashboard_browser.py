"""The dashboard served for real on loopback and loaded in headless Chromium, behind its
login (``PAPER_DASHBOARD_TOKEN``): an operator types the token into the form first.

The screenshot of a session page (equity curve and drawdown) is kept in
``test-artifacts/dashboard-session.png`` for a human to look at.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessions.access import TOKEN_ENV
from tests.browser import Browser
from tests.service import ROOT, query, wait_for
from tests.test_dashboard import seed

ARTIFACT = ROOT / "test-artifacts" / "dashboard-session.png"
CHART = '[data-testid="stVegaLiteChart"]'
TOKEN = "browser-dashboard-token-8d2f41c7"
PASSWORD = "document.querySelector('input[type=\"password\"]')"
BUTTONS = (
    "JSON.stringify(Array.from(document.querySelectorAll('button[data-testid^=\"stBaseButton\"]'))"
    ".map(b => b.innerText.trim()).filter(t => t))"
)


def type_token(browser: Browser, token: str) -> None:
    """Type ``token`` into the login form and press its button, as an operator does."""
    browser.wait_until(f"!!{PASSWORD}", timeout=60)
    browser.evaluate(f"{PASSWORD}.focus(); {PASSWORD}.select()")
    browser.call("Input.insertText", {"text": token})
    browser.evaluate(
        "Array.from(document.querySelectorAll('button'))"
        ".find(b => b.innerText.trim() === 'Log in').click()"
    )


def login(browser: Browser, url: str, token: str = TOKEN) -> None:
    """Open ``url`` and log in; the page asked for follows."""
    browser.navigate(url)
    type_token(browser, token)
    browser.wait_until(f"!{PASSWORD}", timeout=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.read().strip() == b"ok"
    except OSError:
        return False


@contextlib.contextmanager
def serve(db: Path, tmp_path: Path) -> Iterator[str]:
    """``streamlit run`` on a loopback port over ``db``; its base URL."""
    port = free_port()
    log = (tmp_path / "streamlit.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "streamlit", "run", str(ROOT / "scripts" / "dashboard.py"),
            "--server.address", "127.0.0.1",
            "--server.port", str(port),
            "--server.headless", "true",
            "--server.fileWatcherType", "none",
            "--browser.gatherUsageStats", "false",
            "--client.toolbarMode", "viewer",
            "--", "--db", str(db),
        ],
        cwd=tmp_path,
        env={**os.environ, TOKEN_ENV: TOKEN},
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            "streamlit serving",
            lambda: proc.poll() is None and healthy(f"{base}/_stcore/health"),
            60,
        )
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The dashboard over a database with one session."""
    db = tmp_path / "paper.db"
    equities = [f"{100_000 + 1500 * math.sin(i / 9) + 40 * i:.2f}" for i in range(120)]
    seed(db, "SHOT-001", equities)
    with serve(db, tmp_path) as base:
        yield base, db


def test_session_page_renders_its_equity_curve_in_headless_chromium(
    served: tuple[str, Path], tmp_path: Path
) -> None:
    base, db = served
    with Browser(tmp_path / "chromium-profile", loopback_names=("rebound.example",)) as browser:
        # Not logged in: the login form and nothing else, whatever page the URL names.
        browser.navigate(f"{base}/?page=Session&trader=SHOT-001")
        browser.wait_until(f"!!{PASSWORD}", timeout=60)
        assert json.loads(str(browser.evaluate(BUTTONS))) == ["Log in"]
        text = browser.evaluate("document.body.innerText")
        assert isinstance(text, str) and "SHOT-001" not in text and "Halt" not in text
        assert browser.evaluate("document.querySelector('[data-testid=\"stSidebar\"]')") is None
        type_token(browser, TOKEN[:-1])
        browser.wait_until("document.body.innerText.includes('Wrong token.')", timeout=30)
        assert json.loads(str(browser.evaluate(BUTTONS))) == ["Log in"]
        assert query(db, "SELECT count(*) AS n FROM control")[0]["n"] == 0

        # Logged in: the page the URL named, as before.
        type_token(browser, TOKEN)
        browser.wait_until(
            f"document.querySelectorAll('{CHART}').length >= 2 && "
            f"Array.from(document.querySelectorAll('{CHART}')).every("
            "c => c.querySelector('canvas, svg') && c.getBoundingClientRect().height > 100) && "
            "document.querySelectorAll('[data-testid=\"stDataFrame\"] canvas').length >= 3",
            timeout=90,
        )
        text = browser.evaluate("document.body.innerText")
        assert isinstance(text, str)
        assert "SHOT-001" in text and "Equity curve" in text and "Drawdown" in text
        assert "running" in text
        assert {"Halt", "Resume", "Stop", "Log out"} <= set(
            json.loads(str(browser.evaluate(BUTTONS)))
        )
        png = browser.screenshot(ARTIFACT)

        # the page follows the session by itself: a new checkpoint shows up without a reload
        seed(db, "SHOT-001", ["123456.78"])
        browser.wait_until("document.body.innerText.includes('123,456.78')", timeout=30)

        # DNS rebinding: another site's name pointed at 127.0.0.1 gets one line, no page.
        browser.navigate(base.replace("127.0.0.1", "rebound.example"))
        browser.wait_until(
            "document.body.innerText.includes(\"does not answer to host 'rebound.example'\")",
            timeout=60,
        )
        assert browser.evaluate(f"!{PASSWORD}") is True
        assert json.loads(str(browser.evaluate(BUTTONS))) == []
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 20_000, "a page with two charts is not a near-blank image"
