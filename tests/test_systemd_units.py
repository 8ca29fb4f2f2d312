"""The template unit ``paper-node@.service``: one trader per instance, with the single unit's
hardening, notify and watchdog. The two files are compared directive by directive, so a
hardening line added to one and not the other fails here rather than on a host."""

from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from tests.service import ROOT

SINGLE = ROOT / "scripts" / "systemd" / "paper-node.service"
TEMPLATE = ROOT / "scripts" / "systemd" / "paper-node@.service"

# What names the instance: its config, database, state and working directory, its own
# secrets file. Every other directive (hardening, notify, watchdog, restart, stop) is the
# single unit's, value for value.
PER_INSTANCE = {
    "Description",
    "Documentation",
    "WorkingDirectory",
    "ExecStart",
    "StateDirectory",
    "ReadWritePaths",
    "EnvironmentFile",
}

Directives = dict[tuple[str, str], list[str]]


def directives(text: str) -> Directives:
    """(section, key) -> values, in order (a key may repeat, as EnvironmentFile does)."""
    found: Directives = defaultdict(list)
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found[(section, key.strip())].append(value.strip())
    return found


def render(instance: str, opt: Path = Path("/opt/paper-node")) -> str:
    """The template as systemd reads it for ``paper-node@<instance>``."""
    return TEMPLATE.read_text().replace("%i", instance).replace("/opt/paper-node", str(opt))


def test_the_template_has_the_single_units_hardening_notify_and_watchdog():
    single, template = directives(SINGLE.read_text()), directives(TEMPLATE.read_text())
    shared = {k for k in single.keys() | template.keys() if k[1] not in PER_INSTANCE}
    differ = {
        k: (single.get(k), template.get(k)) for k in shared if single.get(k) != template.get(k)
    }
    assert not differ, f"(single unit, template) differ in {differ}"
    assert ("Service", "Type") in shared and ("Service", "WatchdogSec") in shared
    assert ("Service", "ProtectSystem") in shared
    for key in PER_INSTANCE & {k for _, k in single}:
        assert (("Service", key) in template) or (("Unit", key) in template), key


def test_an_instance_reads_its_own_config_and_keeps_its_own_state():
    unit = directives(render("BTC-01"))
    (exec_start,) = unit[("Service", "ExecStart")]
    assert "--config /etc/paper-node/BTC-01.toml" in exec_start
    assert "--db /var/lib/paper-node/BTC-01/paper.db" in exec_start
    assert unit[("Service", "StateDirectory")][0].split()[0] == "paper-node/BTC-01"
    assert unit[("Service", "WorkingDirectory")] == ["/var/lib/paper-node/BTC-01"]
    assert unit[("Service", "ReadWritePaths")] == ["/var/lib/paper-node/BTC-01"]
    # The account locks stay where the single unit's service user has them (its home).
    assert "paper-node/.local/state/paper-node/accounts" in unit[("Service", "StateDirectory")][0]
    # The shared secrets file must exist (a "-" would hide a missing one); its own is optional.
    assert unit[("Service", "EnvironmentFile")] == [
        "/etc/paper-node/secrets.env",
        "-/etc/paper-node/BTC-01.env",
    ]
    text = TEMPLATE.read_text()
    assert "TOKEN" not in text and "SECRET" not in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify_accepts_an_instance(tmp_path: Path):
    # The template itself, named as an instance: systemd resolves %i (a bad specifier or a
    # missing executable fails the verify).
    unit = tmp_path / "paper-node@BTC-01.service"
    unit.write_text(TEMPLATE.read_text().replace("/opt/paper-node", str(ROOT)))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "paper-node@" not in done.stderr, done.stderr


def install_block(page: Path) -> list[str]:
    """The first ```sh block of a docs page, as lines without comments."""
    text = page.read_text()
    start = text.index("```sh\n") + len("```sh\n")
    block = text[start : text.index("```", start)]
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def test_the_fleet_install_is_the_single_units_with_the_template():
    """The operator manual's install works as written for both units: the template's page
    sets the host up with the single unit's lines, then one config and one enable a trader."""
    docs = ROOT / "docs" / "operator"
    single, fleet = install_block(docs / "install.md"), install_block(docs / "fleet.md")
    host = [
        line for line in single if "paper-node.service" not in line and "paper.toml" not in line
    ]
    host = [line for line in host if not line.startswith(("systemctl", "sudo systemctl"))]
    assert host and all(line in fleet for line in host), (host, fleet)
    assert "sudo cp scripts/systemd/paper-node@.service /etc/systemd/system/" in fleet
    config = next(line for line in fleet if "/etc/paper-node/BTC-01.toml" in line)
    assert config.startswith("sudo install -m 0640 -g paper scripts/systemd/paper.toml")
    assert "sudo systemctl enable --now paper-node@BTC-01" in fleet
    # The instance reads the config the page installs, as the rendered unit says.
    (exec_start,) = directives(render("BTC-01"))[("Service", "ExecStart")]
    assert "--config /etc/paper-node/BTC-01.toml" in exec_start
