"""The desktop application's responsiveness (issue 11, "Screenshots and benchmark").

``ui.start``: cold start to an interactive sign-in screen, side by side in one run with a bare
PySide6 ``QWizard`` of the same size. Each start is a fresh interpreter
(``python -m bench.ui --child station|bare``), offscreen (``QT_QPA_PLATFORM=offscreen``); the
two kinds alternate, ``RUNS`` of each after one untimed warm-up of each (the warm-up fills the
page cache, and the bytecode cache: the children write their ``.pyc`` files to
``PYCACHE``, outside the tree, even where ``PYTHONDONTWRITEBYTECODE`` is set, as an installed
station has its bytecode compiled). The station's child runs the real ``station gui --home HOME`` entry point
(``station.cli.run``, the console script's) on a demo station home made once, untimed
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
reading the home's configuration, building and showing the sign-in screen) to the ready
moment, with neither the pipe's delivery of the line nor the child's exit in it. The station
itself opens on the worker once the screen is up (:mod:`station.ui.app`): the screen is
interactive before it is open (a sign-in typed meanwhile runs after the opening), so the
opening is not in this figure; it is in ``ui.stall``'s start. Medians of the runs; ratio =
station / bare (target <= 1.3).

``ui.stall``: the largest event-loop stall during the demo's issuances (onto the token, then
the phone). In this process, :func:`station.ui.demo.run_headless` (scripted people drive the
real windows offscreen over the demo world) with a 10 ms ``QTimer`` heartbeat on the GUI thread; the figure is the
largest interval between two heartbeats (the nominal 10 ms included: a conservative figure),
counted from the first heartbeat, i.e. once the event loop runs: the start is in it (the
station opening on the worker, whose imports hold the GIL in turns with the GUI thread,
while the sign-in screen says "Opening the station…"), and the largest interval before the
first sign-in is printed apart (the scripted registrar signs in at the first look, so most
of the opening counts as after it). A :class:`Watchdog` thread notes what every busy thread
was running while a beat was late (> 30 ms), and the garbage collections meanwhile; the
three longest are printed, so the report names the culprit. This process has imported much
of the station before the heartbeat starts (the demo world, and the wizard's module
``station.ui.demo`` imports), so the opening here imports less than a cold
``station gui``. Target <= 50 ms.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
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
    from station.cli import run

    sys.argv[1:] = ["gui", "--home", home]
    run()  # the console script's entry (core dumps off, then the command)
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


class Watchdog:
    """A 10 ms ``QTimer`` heartbeat on the GUI thread, and a thread that looks every 2 ms: while a
    beat is late (> ``LATE_MS``) it notes what each thread was running (the GUI thread's last
    Python frames: a slot, a constructor, or ``exec`` when it is inside Qt or waiting for the
    GIL; the worker's), and the garbage collections under way. ``stalls`` keeps, per late
    interval, its length, what the people had last done (``said``) and those notes."""

    LATE_MS = 30
    WAITING = {"select", "wait", "poll", "accept", "recv", "recv_into", "get", "_wait_for_tstate_lock"}

    def __init__(self, app, said: list[str]):
        from PySide6.QtCore import QTimer

        self.said, self.last = said, None
        self.stalls: list[dict] = []
        self._seen: dict = {}  # the notes of the interval under way
        self._gc: list[tuple[float, float, int]] = []  # recent collections: start, end, generation
        self._gc_started = 0.0
        self._stop = threading.Event()
        self._gui = threading.get_ident()
        self.timer = QTimer(app)
        self.timer.setTimerType(self.timer.timerType().PreciseTimer)
        self.timer.setInterval(HEARTBEAT_MS)
        self.timer.timeout.connect(self.beat)

    def beat(self) -> None:
        now = time.perf_counter()
        if self.last is not None:
            gap = (now - self.last) * 1000
            if gap > self.LATE_MS:
                during = [(g, end - start) for start, end, g in self._gc if end >= self.last]
                collections = [f"{len(during)} collections (oldest generation {max(g for g, _ in during)}), "
                               f"{sum(t for _, t in during) * 1000:.0f} ms in all"] if during else []
                self.stalls.append({"ms": gap, "during": self.said[0], **self._seen,
                                    **({"gc": collections} if collections else {})})
        self.last, self._seen = now, {}
        self._gc = [c for c in self._gc[-20:] if c[1] >= now]

    def _collecting(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self._gc.append((self._gc_started, time.perf_counter(), info["generation"]))

    def _watch(self) -> None:
        while not self._stop.wait(0.002):
            last = self.last
            if last is None or (time.perf_counter() - last) * 1000 <= self.LATE_MS:
                continue
            frames = sys._current_frames()
            names = {t.ident: t.name for t in threading.enumerate()}
            seen = dict(self._seen)
            for ident, frame in frames.items():
                if ident == threading.get_ident():
                    continue
                name = "gui" if ident == self._gui else names.get(ident, str(ident))
                stack = traceback.extract_stack(frame)[-3:]
                if name != "gui" and stack[-1].name in self.WAITING:
                    continue  # a thread waiting on a socket, a queue or an event holds no GIL
                stack = [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in stack]
                seen.setdefault(name, [])
                if " < ".join(reversed(stack)) not in seen[name]:
                    seen[name] = seen[name] + [" < ".join(reversed(stack))]
            if self.last == last:
                self._seen = seen

    def __enter__(self):
        gc.callbacks.append(self._collecting)
        self.timer.start()
        threading.Thread(target=self._watch, name="bench-watchdog", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.timer.stop()
        gc.callbacks.remove(self._collecting)

    def report(self, worst: int = 3) -> str:
        lines = []
        for stall in sorted(self.stalls, key=lambda s: -s["ms"])[:worst]:
            lines.append(f"  {stall['ms']:.0f} ms, after: {stall['during'] or '(the start)'}")
            for name, notes in stall.items():
                if name not in ("ms", "during"):
                    lines += [f"    {name}: {note}" for note in notes[-3:]]
        return "\n".join(lines)


def measure_stall(env) -> tuple[float, str, float, list[dict], str]:
    """The largest heartbeat interval (ms) during one headless demo issuance, what the
    people last did before it, the largest before they did anything (the start: the station
    opening, the sign-in screen), the issuance's results, and the watchdog's notes on the
    worst stalls."""
    from station.ui.app import prepare_application
    from station.ui.demo import run_headless

    app = prepare_application(offscreen=True)  # station.ui.demo has imported the wizard's module
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

    with Watchdog(app, said) as watchdog:
        watchdog.timer.timeout.connect(beat)
        results = run_headless(env, say=lambda text: said.__setitem__(0, text.strip()))
    return worst["gap"], worst["during"], worst["start"], results, watchdog.report()


def main() -> None:
    sys.pycache_prefix, sys.dont_write_bytecode = str(PYCACHE), False  # this process too: compiled, as installed
    from bench.results import record, table
    from station.sim.demo import DemoEnvironment

    with DemoEnvironment() as env:
        station_ms, bare_ms, (width, height) = measure_start(env.home.root)
        stall_ms, during, start_stall_ms, results, culprits = measure_stall(env)
    if not results or any(r.get("selftest") != "pass" for r in results):
        raise SystemExit(f"bench.ui: the demo issuance did not pass: {results}")
    ratio = station_ms / bare_ms
    print(table([
        (f"station gui to sign-in screen ({width}x{height}, offscreen)", f"{station_ms:.0f}"),
        ("bare PySide6 QWizard, same size", f"{bare_ms:.0f}"),
    ], ("cold start, median of %d" % RUNS, "ms")))
    print(f"\nstart: station/bare = {ratio:.2f} (target <= 1.3)")
    print(f"largest event-loop stall during a demo issuance: {stall_ms:.1f} ms (target <= 50), "
          f"after: {during or '(the start)'}; before the first sign-in (the station opening): {start_stall_ms:.1f} ms")
    if culprits:
        print(f"the longest event-loop turns (> {Watchdog.LATE_MS} ms) and what ran meanwhile:\n{culprits}")
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
