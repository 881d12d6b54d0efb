"""The desktop application's responsiveness (issue 11, "Screenshots and benchmark").

``ui.start``: cold start to an interactive sign-in screen, side by side in one run with a bare
PySide6 ``QWizard`` of the same size. Each start is a fresh interpreter
(``python -m bench.ui --child station|bare``), offscreen (``QT_QPA_PLATFORM=offscreen``); the
two kinds alternate, ``RUNS`` of each after one untimed warm-up of each (the warm-up fills the
page cache, and the bytecode cache: the children write their ``.pyc`` files to
``PYCACHE``, outside the tree, even where ``PYTHONDONTWRITEBYTECODE`` is set, as an installed
station has its bytecode compiled). The station's child runs the real ``station gui --home HOME`` entry point
(``station.cli.main``) on a demo station home made once, untimed
(:class:`station.sim.demo.DemoEnvironment`, kept open meanwhile); the bare child shows a
``QWizard`` with one page holding a ``QLineEdit``, resized to the sign-in window's size. Both
children create the ``QApplication`` first (the station's ``prepare_application`` reuses it)
so that they can watch ``focusChanged``: a child is *ready* when the identity field (the
line edit) has the focus in its shown window and then a zero-timeout timer has fired (the
event loop has gone round with nothing left to do first). The child then prints
``time.perf_counter()`` and exits at once.

**What is measured, from when.** The parent reads ``time.perf_counter()`` just before
``subprocess.Popen`` and the child prints its own ``time.perf_counter()`` when ready. On
Linux both are ``CLOCK_MONOTONIC``, one clock for every process, so the difference is the
time from the process's creation (fork and exec, the interpreter's start, every import,
opening the station on its worker, building and showing the window) to the ready moment,
with neither the pipe's delivery of the line nor the child's exit in it. Medians of the
runs; ratio = station / bare (target <= 1.3).

``ui.stall``: the largest event-loop stall during a full demo issuance. In this process,
:func:`station.ui.demo.run_headless` (scripted people drive the real windows offscreen over
the demo world) with a 10 ms ``QTimer`` heartbeat on the GUI thread; the figure is the
largest interval between two heartbeats (the nominal 10 ms included: a conservative figure),
counted from the first heartbeat, i.e. once the event loop runs: the start is in it (the
station opening on the worker, whose imports hold the GIL in chunks, while "Opening the
station…" shows), and the largest interval before the first sign-in is printed apart.
Target <= 50 ms.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 7
HEARTBEAT_MS = 10
ROOT = Path(__file__).resolve().parents[1]
PYCACHE = Path(tempfile.gettempdir()) / "station-bench-pycache"  # the children's bytecode, outside the tree
IDENTITY_NAME = "Operator identity"  # the sign-in screen's identity field (station/ui/signin.py)


# --- the children -------------------------------------------------------------------------------------
def _when_ready(app, field_name: str) -> None:
    """Print the clock and leave once ``field_name`` has the focus in a shown window and the
    event loop has gone round once more."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QLineEdit

    def ready() -> None:
        window = app.focusWidget().window()
        print(f"ready {time.perf_counter():.6f} {window.width()} {window.height()}", flush=True)
        os._exit(0)

    def focus(_old, new) -> None:
        if isinstance(new, QLineEdit) and new.accessibleName() == field_name and new.window().isVisible():
            QTimer.singleShot(0, ready)

    app.focusChanged.connect(focus)


def child_station(home: str) -> None:
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    _when_ready(app, IDENTITY_NAME)
    from station.cli import main

    main(["gui", "--home", home])
    sys.exit("the station's window closed before its sign-in screen was ready")


def child_bare(width: int, height: int) -> None:
    from PySide6.QtWidgets import QApplication, QLineEdit, QVBoxLayout, QWizard, QWizardPage

    app = QApplication(sys.argv[:1])
    _when_ready(app, IDENTITY_NAME)
    wizard = QWizard()
    page = QWizardPage()
    edit = QLineEdit()
    edit.setAccessibleName(IDENTITY_NAME)
    QVBoxLayout(page).addWidget(edit)
    wizard.addPage(page)
    wizard.resize(width, height)
    wizard.show()
    edit.setFocus()
    app.exec()


# --- the parent ----------------------------------------------------------------------------------------
def start_once(args: list[str]) -> tuple[float, int, int]:
    """One cold start: milliseconds from just before the process is created to ready, and
    the ready window's size."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT), PYTHONPYCACHEPREFIX=str(PYCACHE))
    for name in ("QT_SCALE_FACTOR", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "bench.ui", "--child", *args], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = child.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        child.kill()
        raise SystemExit(f"bench.ui: the {args[0]} child did not get ready in 120 s")
    words = out.split()
    if child.returncode != 0 or not words or words[0] != "ready":
        raise SystemExit(f"bench.ui: the {args[0]} child failed ({child.returncode}): {err.strip()[-800:]}")
    return (float(words[1]) - started) * 1000, int(words[2]), int(words[3])


def measure_start(home: Path, runs: int = RUNS) -> tuple[float, float, tuple[int, int]]:
    """Medians (station ms, bare ms) over ``runs`` alternating starts, and the window size."""
    import statistics

    _, width, height = start_once(["station", str(home)])  # warm-up, and the size the bare wizard copies
    start_once(["bare", str(width), str(height)])
    station, bare = [], []
    for _ in range(runs):
        station.append(start_once(["station", str(home)])[0])
        bare.append(start_once(["bare", str(width), str(height)])[0])
    print("station starts (ms):", " ".join(f"{v:.0f}" for v in station))
    print("bare starts (ms):   ", " ".join(f"{v:.0f}" for v in bare))
    return statistics.median(station), statistics.median(bare), (width, height)


def measure_stall(env) -> tuple[float, str, float, list[dict]]:
    """The largest heartbeat interval (ms) during one headless demo issuance, what the
    people last did before it, the largest before they did anything (the start: the station
    opening, the sign-in screen), and the issuance's results."""
    from PySide6.QtCore import QTimer

    from station.ui.app import prepare_application
    from station.ui.demo import run_headless

    app = prepare_application(offscreen=True)
    said = [""]
    worst = {"gap": 0.0, "during": "", "last": None, "start": 0.0}

    def beat() -> None:
        now = time.perf_counter()
        if worst["last"] is not None:
            gap = (now - worst["last"]) * 1000
            if gap > worst["gap"]:
                worst["gap"], worst["during"] = gap, said[0]
            if not said[0]:
                worst["start"] = max(worst["start"], gap)
        worst["last"] = now

    heartbeat = QTimer(app)
    heartbeat.setTimerType(heartbeat.timerType().PreciseTimer)
    heartbeat.setInterval(HEARTBEAT_MS)
    heartbeat.timeout.connect(beat)
    heartbeat.start()
    results = run_headless(env, say=lambda text: said.__setitem__(0, text.strip()))
    heartbeat.stop()
    return worst["gap"], worst["during"], worst["start"], results


def main() -> None:
    sys.pycache_prefix, sys.dont_write_bytecode = str(PYCACHE), False  # this process too: compiled, as installed
    from bench.results import record, table
    from station.sim.demo import DemoEnvironment

    with DemoEnvironment() as env:
        station_ms, bare_ms, (width, height) = measure_start(env.home.root)
        stall_ms, during, start_stall_ms, results = measure_stall(env)
    if not results or results[-1].get("selftest") != "pass":
        raise SystemExit(f"bench.ui: the demo issuance did not pass: {results}")
    ratio = station_ms / bare_ms
    print(table([
        (f"station gui to sign-in screen ({width}x{height}, offscreen)", f"{station_ms:.0f}"),
        ("bare PySide6 QWizard, same size", f"{bare_ms:.0f}"),
    ], ("cold start, median of %d" % RUNS, "ms")))
    print(f"\nstart: station/bare = {ratio:.2f} (target <= 1.3)")
    print(f"largest event-loop stall during a demo issuance: {stall_ms:.1f} ms (target <= 50), "
          f"after: {during or '(the start)'}; before the first sign-in (the station opening): {start_stall_ms:.1f} ms")
    record([
        {"name": "ui.start", "value": station_ms, "unit": "ms", "peer": "bare PySide6 QWizard",
         "peer_value": bare_ms, "ratio": ratio},
        {"name": "ui.stall", "value": stall_ms, "unit": "ms", "peer": "target (50 ms)", "peer_value": 50.0,
         "ratio": stall_ms / 50.0},
    ])


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        if sys.argv[2] == "station":
            child_station(sys.argv[3])
        else:
            child_bare(int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
