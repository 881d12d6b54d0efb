"""Below the Qt interface nothing imports Qt: the engine, PKI-AUTH, targets, service, devices,
audit and the command line run without PySide6 (issue 10). Every module under station/ but
station.ui and station.wizard is imported in a fresh interpreter (found by walking the package,
so new modules are covered) and no Qt module may be loaded after."""

import subprocess
import sys

PROBE = r"""
import importlib, pkgutil, sys
import station

QT_FREE_EXCEPT = ("station.ui", "station.wizard")
SCRIPTS = ("station.records.migrations",)  # Alembic's scripts: alembic runs them, nobody imports them
names = []
for info in pkgutil.walk_packages(station.__path__, "station."):
    name = info.name
    if name == "station.__main__" or any(name == p or name.startswith(p + ".") for p in QT_FREE_EXCEPT + SCRIPTS):
        continue
    importlib.import_module(name)
    names.append(name)
qt = sorted(m for m in sys.modules if m.split(".")[0] in ("PySide6", "shiboken6"))
print(len(names), " ".join(names))
print("QT:", " ".join(qt))
"""


def test_no_module_outside_the_ui_imports_qt():
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    counted, qt = result.stdout.splitlines()
    count, *names = counted.split()
    for expected in ("station.issuance.engine", "station.issuance.bridge", "station.issuance.pkiauth",
                     "station.issuance.targets.pkcs11", "station.service.station", "station.devices.pcsc",
                     "station.audit.chain", "station.cli.interaction"):
        assert expected in names or expected.replace("crypto", "issuance") in names, expected
    assert int(count) == len(names) > 50
    assert qt.strip() == "QT:", qt


def test_the_probe_would_see_qt():
    """The check is not vacuous: importing the Qt adapter does load PySide6."""
    probe = "import sys, station.ui.bridge; print(any(m.startswith('PySide6') for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "True", result.stderr
