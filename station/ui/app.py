"""The desktop application: ``station gui`` starts here (:func:`run`).

The order of a start: check that a display can be used (Qt aborts the process when no
platform plugin starts, so this is checked first and reported in one line); create the
QApplication with the station's names and icon; read the home's configuration (a small TOML
file) and show the sign-in screen built from it, saying "Opening the station…"; meanwhile
open the station ON THE DEVICE WORKER (the service layer, SQLAlchemy and the PKI are imported
there: most of a start, off the GUI thread and after the first paint). A sign-in submitted
meanwhile runs on the worker after the opening (:class:`UiContext`). Where the configuration
cannot be read, the opening's error is what is shown. :class:`Shell` then moves between the
sign-in screen and the main window: sign-in, sign-out and the idle lock (:mod:`station.ui.idle`).

Resources (the icon, the desktop entry) live in the repository's top-level ``resources/``
folder, beside ``station/``: a source checkout or an editable install finds them there. A
wheel does not ship them (they belong to the system: a package installs the desktop entry in
``/usr/share/applications`` and the icon in the icon theme, where ``station.desktop`` names it
``station``); the icon is then looked up in the theme, and a missing icon is not an error.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QLabel, QProgressBar, QVBoxLayout, QWidget

from station.errors import Exit, StationError, sentence
from station.home import StationHome
from station.ui.context import Settings, UiContext
from station.ui.worker import QtDeviceWorker

APP_NAME = "station"
DISPLAY_NAME = "Derived PIV Issuance Station"
DESKTOP_FILE = "station"  # resources/station.desktop, installed as station.desktop
RESOURCES = Path(__file__).resolve().parents[2] / "resources"


def tr(text: str) -> str:
    return QCoreApplication.translate("station", text)


@dataclass
class DemoInfo:
    """What the demo tells the sign-in screen: its operators and their passwords (shown in demo
    mode only)."""

    operators: dict[str, str] = field(default_factory=dict)  # identity -> password


def resource(name: str) -> Path | None:
    """``resources/<name>`` of the source tree, or None when it is not there (a wheel)."""
    path = RESOURCES / name
    return path if path.is_file() else None


def app_icon() -> QIcon:
    path = resource("icons/station.svg")
    return QIcon(str(path)) if path is not None else QIcon.fromTheme(DESKTOP_FILE)


# Platform plugins that need no display server (tests, screenshots, headless demo).
_HEADLESS_PLATFORMS = ("offscreen", "minimal", "minimalegl", "vnc", "linuxfb", "eglfs", "vkkhrdisplay")


def display_problem(environ=os.environ) -> str | None:
    """Why no window can be shown, or None. Qt itself aborts the whole process (SIGABRT) when
    no platform plugin can start, so the station looks first: an explicit headless platform is
    fine; otherwise an X11 ``DISPLAY`` or a ``WAYLAND_DISPLAY`` is needed."""
    platform = (environ.get("QT_QPA_PLATFORM") or "").split(":")[0].split(";")[0].strip()
    if platform in _HEADLESS_PLATFORMS:
        return None
    if platform == "xcb":
        return None if environ.get("DISPLAY") else "QT_QPA_PLATFORM is xcb but DISPLAY is not set"
    if platform.startswith("wayland"):
        return None if environ.get("WAYLAND_DISPLAY") else "QT_QPA_PLATFORM is wayland but WAYLAND_DISPLAY is not set"
    if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return None
    return "neither DISPLAY nor WAYLAND_DISPLAY is set"


def describe(error: BaseException) -> tuple[str, str]:
    """What happened and what to do, for an error shown to the operator: two sentences."""
    if isinstance(error, StationError):
        what, hint = str(error), error.hint or tr("try again; if it happens again, tell the station's administrator")
    else:
        what, hint = (tr("unexpected error: %s") % type(error).__name__,
                      tr("try again; if it happens again, note the time and tell the station's administrator"))
    return sentence(what, capital=True), sentence(hint, capital=True)


def show_error(parent: QWidget | None, title: str, error: BaseException) -> None:
    """One dialog: what happened (the text) and what to do (the informative text)."""
    from PySide6.QtWidgets import QMessageBox  # looked up when needed: its enums cost the start

    what, hint = describe(error)
    box = QMessageBox(QMessageBox.Icon.Critical, title, what, QMessageBox.StandardButton.Ok, parent)
    box.setInformativeText(hint)
    box.setStyleSheet("QLabel#qt_msgbox_label { min-width: 28em; }")  # QMessageBox ignores a minimum width; em scales with the font
    box.setAccessibleName(title)
    box.exec()


# What the GUI thread would otherwise import when it first needs them, loaded on the worker
# while the station opens: the windows, and the service modules the windows' work uses.
SERVICE_MODULES = ("station.service.session", "station.service.operators", "station.service.requests",
                   # what the wizard's first moments import on other threads while its window
                   # is built: the card watcher (PC/SC), the targets' description (PKCS#11)
                   "station.devices.pcsc", "station.devices.piv.summary", "station.issuance.targets.pkcs11",
                   "station.issuance.engine", "station.issuance.selftest")
UI_MODULES = ("station.ui.idle", "station.ui.registry", "station.ui.main_window", "station.ui.wizard",
              "station.ui.approval", "station.ui.kiosk")

OPEN_AFTER_MS = 250  # the station opens at the latest this long after the sign-in screen shows


def load_modules(names: tuple[str, ...]) -> None:
    """On the worker: import ``names`` (a class statement is no widget: importing them off the
    GUI thread is safe), so that the GUI thread finds them loaded and never stalls on an
    import."""
    for name in names:
        importlib.import_module(name)


def load_bindings() -> None:
    """On the worker: every class of QtCore, QtGui and QtWidgets looked up once. PySide6 makes a
    class's Python type, and its enums, when the class is first looked up, ~0.3 ms per enum;
    an application-wide event filter (the idle lock) meets objects of classes the station never
    names, and the GUI thread would make ~100 of them in one turn (measured: ~30 ms, building
    the wizard's first page). Only Python types are made here, no Qt object."""
    from PySide6 import QtCore, QtGui, QtWidgets

    for module in (QtCore, QtGui, QtWidgets):
        for name in dir(module):
            getattr(module, name)


def open_station(home: StationHome):
    """On the worker: the windows' own modules first (the GUI thread may look for them soon,
    and would then wait for the worker only until they are loaded, not import them itself);
    then the service layer (SQLAlchemy, the PKI: the biggest part of a start), not on the GUI
    thread, so the sign-in screen shows at once; the station opens; then what the windows'
    work imports (before a sign-in submitted meanwhile runs: the main window that follows it
    finds everything loaded)."""
    load_modules(UI_MODULES)
    from station.service.station import Station

    station = Station.open(home)
    try:
        load_modules(SERVICE_MODULES)
        load_bindings()
    except BaseException:
        station.close()
        raise
    return station


class OpeningWindow(QWidget):
    """Says "Opening the station…" while the station opens on the device worker: on the
    sign-in screen, or as a window of its own when the configuration could not be read."""

    def __init__(self):
        super().__init__()
        self.setWindowTitle(tr(DISPLAY_NAME))
        layout = QVBoxLayout(self)
        self.label = QLabel(tr("Opening the station…"))
        self.label.setAccessibleName(tr("Opening the station"))
        busy = QProgressBar()
        busy.setRange(0, 0)  # busy: no known end
        busy.setTextVisible(False)
        busy.setAccessibleName(tr("Opening the station"))
        layout.addWidget(self.label)
        layout.addWidget(busy)


class Shell(QObject):
    """The application's top-level windows: opening, sign-in, main window, and the idle lock.

    ``main_window_created(MainWindow)`` lets the lead wire its signals (new issuance, resume,
    approve) to the wizard; ``opened(UiContext)`` once the station is open;
    ``open_failed(error)`` when it cannot be opened (the dialog has been shown)."""

    opened = Signal(object)
    open_failed = Signal(object)
    main_window_created = Signal(object)

    def __init__(self, home: StationHome, worker: QtDeviceWorker, *, demo: DemoInfo | None = None,
                 show_dialogs: bool = True, parent: QObject | None = None):
        super().__init__(parent)
        self.home, self.worker, self.demo, self.show_dialogs = home, worker, demo, show_dialogs
        self.ctx: UiContext | None = None
        self.opening: OpeningWindow | None = None
        self.signin = None  # SignInScreen
        self.main_window = None  # MainWindow
        self.idle = None  # IdleLock
        self._idle_watching = False
        self.exit_code = int(Exit.OK)
        self._hidden: list[QWidget] = []  # windows hidden by the idle lock, shown again to the same operator
        self._locked_identity: str | None = None
        self._open_job: int | None = None

    def start(self) -> None:
        """The sign-in screen from the home's configuration, and the station opening on the
        worker; without a readable configuration, a small "Opening the station…" window until
        the opening fails (or, were the file fixed meanwhile, the station is open)."""
        self.opening = OpeningWindow()
        self.worker.finished.connect(self._open_done)
        self.worker.failed.connect(self._open_error)
        try:
            config = self.home.load_config()
        except StationError:  # the opening reports it, in the same words as any other reason
            self.opening.show()
            self._open_job = self.worker.run("open the station", open_station, self.home)
            return
        ctx = UiContext(self.home, None, self.worker, Settings.from_config(config), demo=self.demo, config=config)
        self.use(ctx)  # the sign-in screen says "Opening the station…" meanwhile
        # The opening starts once the screen is up (activated, and the event loop round once
        # more: painted), or after OPEN_AFTER_MS where no window manager activates it: its
        # imports hold the GIL in turns with the GUI thread and would slow the first paint.
        # A sign-in submitted sooner starts it at once (UiContext.call).
        ctx.open_later(open_station, self.home)
        QApplication.instance().focusWindowChanged.connect(self._screen_up)
        QTimer.singleShot(OPEN_AFTER_MS, self, self._open)

    def _screen_up(self, window) -> None:
        if self.signin is not None and window is not None and window is self.signin.windowHandle():
            QApplication.instance().focusWindowChanged.disconnect(self._screen_up)
            QTimer.singleShot(0, self, self._open)

    def _open(self) -> None:
        self.ctx.open_deferred()

    def _is_open_job(self, job: int) -> bool:
        """The opening's job: the context's, or (no configuration read, no context yet) the shell's own."""
        return job == (self.ctx.open_job if self.ctx is not None else self._open_job)

    def _open_done(self, job: int, station) -> None:
        if not self._is_open_job(job):
            return
        self._disconnect_open()
        if self.ctx is None:
            self.use(UiContext(self.home, station, self.worker, Settings.from_config(station.config), demo=self.demo))
        if self.opening is not None:
            self.opening.close()
            self.opening.deleteLater()
            self.opening = None
        self.opened.emit(self.ctx)

    def _open_error(self, job: int, error: BaseException) -> None:
        if not self._is_open_job(job):
            return
        self._disconnect_open()
        self.exit_code = int(Exit.ERROR)
        if self.opening is not None:
            self.opening.hide()
        if self.signin is not None:
            self.signin.hide()
        if self.show_dialogs:
            what, hint = describe(error)
            print(f"station: {what} {hint}", file=sys.stderr)  # also for whoever started it from a terminal
            show_error(None, tr("The station cannot be opened"), error)
        self.open_failed.emit(error)  # run() ends the application with exit_code

    def _disconnect_open(self) -> None:
        self.worker.finished.disconnect(self._open_done)
        self.worker.failed.disconnect(self._open_error)
        self._open_job = None

    def use(self, ctx: UiContext) -> None:
        """The sign-in screen (the station may still be opening)."""
        from station.ui.signin import SignInScreen

        self.ctx = ctx
        self.signin = SignInScreen(ctx)
        self.signin.signed_in.connect(self._signed_in)
        if ctx.station is None and self.opening is not None:
            self.signin.add_status(self.opening)
        self.signin.show()  # before the opening window closes: closing the last window would quit

    def _signed_in(self, signed) -> None:
        from station.ui.main_window import MainWindow

        if self._locked_identity is not None and self._locked_identity != signed.identity:
            for window in self._hidden:  # another operator: the first one's windows close (requests stay resumable)
                window.close()
            self._hidden = []
            if self.main_window is not None:
                self.main_window.close()
                self.main_window = None
        self._locked_identity = None
        self.ctx.set_operator(signed)
        self.signin.hide()
        if self.main_window is None:
            self.main_window = MainWindow(self.ctx)
            self.main_window.sign_out_requested.connect(self.sign_out)
            self.main_window.new_issuance_requested.connect(lambda: self.open_issuance(None))
            self.main_window.resume_requested.connect(self.open_issuance)
            self.main_window.approve_requested.connect(self.open_issuance)
            self.main_window_created.emit(self.main_window)
        for window in self._hidden:
            window.setEnabled(True)
            window.show()
        self._hidden = []
        self.main_window.show()
        self._watch_idle(True)

    def _watch_idle(self, on: bool) -> None:
        """The idle lock, counting down while someone is signed in. Its event filter sits on the
        top-level windows (``QWindow``), not on the whole application: a person's keys, mouse
        and touch reach a window before its widgets, and a window sees few other events. An
        application-wide filter runs Python for every event of every widget, and each such call
        waits for the GIL while the worker runs Python (measured: 40-70 ms event-loop stalls
        during an issuance, none with the filter on the windows). A window shown later gets the
        filter when the focus moves (to it or to any other window)."""
        from station.ui.idle import IdleLock

        app = QApplication.instance()
        if self.idle is None:
            self.idle = IdleLock(self.ctx.settings.idle_lock_seconds, parent=self)
            self.idle.locked.connect(self.lock)
        if on:
            self._filter_windows()
            if not self._idle_watching:
                app.focusWindowChanged.connect(self._filter_windows)
            self.idle.start()
        else:
            self.idle.stop()
            if self._idle_watching:
                app.focusWindowChanged.disconnect(self._filter_windows)
            for window in app.topLevelWindows():
                window.removeEventFilter(self.idle)
        self._idle_watching = on

    def _filter_windows(self, *_) -> None:
        for window in QApplication.topLevelWindows():
            window.installEventFilter(self.idle)  # once: installing again only moves it first

    def open_issuance(self, request_id: int | None) -> None:
        """The wizard for a new request, or for request ``request_id`` at its step (a
        registrar resuming it, a supervisor deciding it); loaded on the worker."""
        from station.service import requests
        from station.ui.wizard import IssuanceWindow

        main = self.main_window

        def show(window) -> None:
            window.closed.connect(main.refresh)
            window.show()
            window.raise_()

        if request_id is None:
            show(IssuanceWindow(self.ctx, main))
            return

        def loaded(record) -> None:
            if record is None:
                main.show_failure(tr("There is no request {id}.").format(id=request_id), tr("Refresh the list."))
                return
            show(IssuanceWindow(self.ctx, main, resume=(record.id, record.state, record.aal)))

        self.ctx.call("load a request", requests.load, request_id, on_done=loaded,
                      on_error=lambda error: main.show_failure(*describe(error)))

    def lock(self) -> None:
        """The idle lock: the operator is signed out, every window is hidden and disabled (an
        open request stays resumable: it is in the database) and the sign-in screen shows."""
        if self.ctx is None or self.ctx.operator is None:
            return
        from PySide6.QtWidgets import QMessageBox

        self._locked_identity = self.ctx.operator.identity
        self.ctx.set_operator(None)
        self._watch_idle(False)
        for window in QApplication.topLevelWidgets():
            if window is not self.signin and window.isVisible() and not isinstance(window, QMessageBox):
                window.setEnabled(False)
                window.hide()
                self._hidden.append(window)
        self.signin.reset(tr("The station locked itself after %d minutes without input. Sign in again to continue.")
                          % max(1, round(self.ctx.settings.idle_lock_seconds / 60)))
        self.signin.show()
        self.signin.raise_()

    def sign_out(self) -> None:
        if self.ctx is None:
            return
        self.ctx.set_operator(None)
        self._watch_idle(False)
        self.signin.reset(tr("Signed out."))
        self.signin.show()  # before the main window closes: closing the last window would quit
        if self.main_window is not None:
            self.main_window.close()
            self.main_window = None

    def close_station(self, timeout: float = 10.0) -> None:
        """Close the station on the worker (once it is open: the job runs after the opening),
        then stop the worker."""
        ctx = self.ctx

        def close() -> None:
            if ctx.station is not None:
                ctx.station.close()

        if ctx is not None:
            self.worker.run("close the station", close)
        self.worker.stop(timeout)


def prepare_application(*, offscreen: bool = False) -> QApplication:
    """The QApplication with the station's names and icon (``offscreen``: no display used)."""
    if offscreen and QApplication.instance() is None:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(tr(DISPLAY_NAME))
    app.setDesktopFileName(DESKTOP_FILE)
    app.setWindowIcon(app_icon())
    return app


def run(home: StationHome, *, demo: DemoInfo | None = None) -> int:
    """``station gui``: the exit code (0, or 2 when there is no display or the station cannot
    be opened)."""
    problem = display_problem()
    if problem is not None:
        print(f"station: no display ({problem}). Run it on a desktop session, or set QT_QPA_PLATFORM=offscreen "
              "for a window-less run.", file=sys.stderr)
        return int(Exit.ERROR)
    app = prepare_application()
    shell = Shell(home, QtDeviceWorker(), demo=demo)
    shell.open_failed.connect(lambda _: app.exit(shell.exit_code))
    shell.start()
    code = app.exec()
    shell.close_station()
    return shell.exit_code or code
