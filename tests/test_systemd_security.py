"""The shipped unit is hardened (``systemd-analyze security`` <= 3.0, "OK") and the README's
install makes it runnable as written: the config readable by ``User=paper``, the secrets
file required (no ``EnvironmentFile=-`` hiding a missing one), no dev tools installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.service import ROOT

UNITS = ROOT / "scripts" / "systemd"
README = ROOT / "README.md"
MAX_EXPOSURE = 3.0

# (systemd-analyze verify of the single unit: tests/test_service_ops.py; of the template:
# tests/test_systemd_units.py.)
needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="no systemd-analyze"
)


def exposure(unit: Path) -> float:
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout + done.stderr)
    assert found, done.stdout + done.stderr
    return float(found.group(1))


@needs_systemd_analyze
@pytest.mark.parametrize("name", ["paper-node.service", "paper-node@.service"])
def test_the_shipped_units_are_hardened(tmp_path: Path, name: str) -> None:
    unit = tmp_path / name.replace("@.", "@BTC-01.")
    unit.write_text((UNITS / name).read_text())
    assert exposure(unit) <= MAX_EXPOSURE


def install_blocks() -> list[str]:
    """Every ```sh block of the README and the operator manual that installs the service
    (the one with ``useradd``): wherever the docs keep it, each copy must work."""
    pages = [README, ROOT / "docs" / "operator" / "install.md"]
    texts = [page.read_text() for page in pages if page.exists()]
    return [
        block.split("```")[0]
        for text in texts
        for block in text.split("```sh\n")[1:]
        if "useradd" in block.split("```")[0]
    ]


def test_the_documented_install_runs_as_written() -> None:
    unit = (UNITS / "paper-node.service").read_text()
    assert "EnvironmentFile=/etc/paper-node/secrets.env" in unit
    assert "EnvironmentFile=-" not in unit
    blocks = install_blocks()
    assert blocks
    for install in blocks:
        assert "useradd --system --user-group" in install
        assert "make install-prod" in install  # the service's dependencies, no dev extras
        # The config directory and file readable by the service's group; the secrets file
        # read by systemd (root) only, and created, empty if Telegram and keys are unused.
        assert "install -d -m 0750 -g paper /etc/paper-node" in install
        assert "install -m 0640 -g paper scripts/systemd/paper.toml /etc/paper-node/" in install
        assert "install -m 0600 /dev/null /etc/paper-node/secrets.env" in install
    makefile = (ROOT / "Makefile").read_text()
    target = makefile[makefile.index("install-prod:") :].split("\n\n")[0]
    assert "pip install" in target and "[dev]" not in target
