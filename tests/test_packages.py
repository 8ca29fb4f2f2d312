"""Every public name each package exports resolves; status stays free of Nautilus."""

from __future__ import annotations

import subprocess
import sys

import pytest

import actors
import storage
import supervisor


@pytest.mark.parametrize("package", [actors, storage, supervisor])
def test_public_names_resolve(package):
    for name in package.__all__:
        assert getattr(package, name) is not None


def test_storage_and_config_do_not_import_nautilus():
    code = (
        "import sys, storage, supervisor.config; "
        "sys.exit(any(m.startswith('nautilus_trader') for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=60).returncode == 0
