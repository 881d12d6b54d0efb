"""``make screenshots``: every screen of the station's windows as PNG in ``docs/screenshots/``.

The real windows over the embedded demo world (:class:`station.sim.demo.DemoEnvironment`),
driven by the headless demo's scripted people (:class:`station.ui.demo.ScriptedPeople`), who
here pause at each moment worth a picture and grab the window (``QWidget.grab``): the sign-in
screen; the wizard's seven pages (the request with the card read and the target chosen, the
approval page, the supervisor's lock, PKI-AUTH with the kiosk asking the PIV card's PIN, key
generation with its sub-steps, delivery, the kiosk's new-PIN entry showing a PIN-policy
error (``wizard-activation``: the engine asks for the new PIN before the key is generated,
so the step list shows step 4 then) and the activation step itself, the self-test's PASS); the kiosk alone; the applicant's receipt (the PDF's first page
through ``pdftoppm``); the second issuance, onto the phone: its code on screen with the countdown
(``wizard-phone``) and what the phone did once it is issued (``wizard-phone-issued``); then, after a second request is opened and left for approval, the main
window of a registrar, a supervisor, an administrator (registry) and an auditor (audit trail).

``python -m tools.screenshots [--scale 2] [--xvfb] [--out DIR]``: offscreen by default, or
under ``xvfb-run`` with the xcb platform (``--xvfb``); at 200 % (``QT_SCALE_FACTOR=2``) the
main screens only, named ``<name>@2x.png``. The kiosk sits over the wizard as the
window-modal panel it is on a one-screen station: the wizard's picture has the kiosk's
drawn at the centre, where :meth:`KioskWindow.place` puts it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
MAIN = ("signin", "wizard-request", "approval-lock", "kiosk", "wizard-self-test", "wizard-phone")  # also at 200 %
AUDITOR = ("auditor", "auditor passphrase")
TOUR = ("registrar", "supervisor", "admin", "auditor")  # main windows, by identity
MAIN_WINDOW_SIZE = (1000, 620)  # logical pixels (scaled by QT_SCALE_FACTOR), a registrar's usual window
WIZARD_SIZE = (960, 640)
RECEIPT_DPI = 60  # the receipt's picture: an A4 page at 60 dpi is about 500 × 700 pixels


def _names(scale: float) -> set[str] | None:
    """The pictures to take: all at 100 %, the main ones otherwise."""
    return None if scale == 1 else set(MAIN)


def add_auditor(env) -> None:
    """The demo has no auditor: the administrator enrols one (through the service, as
    ``station operators add`` would). The applicant, who holds two credentials once the token
    and the phone are issued, may ask for a third: the request left for approval."""
    from station.issuance.signin import hash_password, sign_in
    from station.service.operators import add_operator
    from station.service.station import Station
    from station.sim.demo import ADMIN
    from station.terms import AuthMethod, Role

    identity, password = AUDITOR
    with Station.open(env.home) as station:
        admin = sign_in(station, ADMIN[0], lambda: ADMIN[1], Role.ADMINISTRATOR)
        add_operator(station, identity, display_name=identity.capitalize(), roles=[Role.AUDITOR],
                     auth_method=AuthMethod.PASSWORD, auth_reference=hash_password(password), actor=admin.identity)
        issuance = dict(station.config.get("issuance") or {}, max_active_per_applicant=3)
        env.home.save_config({**station.config, "issuance": issuance})


def photographer_class():
    from PySide6.QtCore import QEvent, QPoint, QTimer
    from PySide6.QtGui import QColor, QPainter, QPen
    from PySide6.QtWidgets import QApplication, QProgressBar

    from station.issuance.bridge import PromptKind
    from station.issuance.progress import Step
    from station.sim.demo import ADMIN, OPERATORS
    from station.ui.demo import ScriptedPeople
    from station.ui.wizard import IssuanceWindow

    passwords = dict(OPERATORS, **{ADMIN[0]: ADMIN[1], AUDITOR[0]: AUDITOR[1]})

    def settle() -> None:
        """Pending layout requests first: a grab shows what the next paint would."""
        QApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)

    class Photographer(ScriptedPeople):
        """The scripted people, pausing for pictures. Phases: ``first`` (the whole issuance),
        ``second`` (a second request opened and left for approval), ``tour`` (each role's
        main window), then ``done(results)``."""

        def __init__(self, shell, out: Path, suffix: str, wanted: set[str] | None, say=print):
            super().__init__(shell, say)
            self.out, self.suffix, self.wanted = out, suffix, wanted
            self.taken: list[Path] = []
            self.phase = "first"
            self.tour = list(TOUR)
            self._watched: set[int] = set()
            self._tour_wait = 0

        # --- pictures ------------------------------------------------------------------------------
        def want(self, name: str) -> bool:
            return self.wanted is None or name in self.wanted

        def save(self, name: str, pixmap) -> None:
            path = self.out / f"{name}{self.suffix}.png"
            if not pixmap.save(str(path), "PNG", 0):  # quality 0: the most compressed PNG
                raise RuntimeError(f"cannot write {path}")
            if path not in self.taken:
                self.taken.append(path)
                self.say(f"    picture: {path.name}")

        def shoot(self, name: str, widget, *, over=None) -> None:
            """``widget``'s window (and ``over``, a panel drawn at its centre, framed)."""
            if not self.want(name):
                return
            settle()
            pixmap = widget.window().grab()
            if over is not None:
                panel = over.grab()
                size, inner = pixmap.deviceIndependentSize(), panel.deviceIndependentSize()
                at = QPoint(int(size.width() - inner.width()) // 2, int(size.height() - inner.height()) // 2)
                painter = QPainter(pixmap)
                painter.drawPixmap(at, panel)
                painter.setPen(QPen(QColor("#555555"), 1))
                painter.drawRect(at.x() - 1, at.y() - 1, int(inner.width()) + 1, int(inner.height()) + 1)
                painter.end()
            self.save(name, pixmap)

        # --- the people ------------------------------------------------------------------------------
        def start(self) -> None:
            self.shell.main_window_created.connect(self._main_window)
            self._timer.start()

        def _main_window(self, main) -> None:
            main.resize(*MAIN_WINDOW_SIZE)
            if self.phase in ("first", "second"):
                QTimer.singleShot(0, main.new_issuance_requested.emit)

        def look(self) -> None:
            if self.phase == "tour":
                self._look_tour()
                return
            signin = self.shell.signin
            if (self.phase == "first" and signin is not None and signin.isVisible() and signin.isEnabled()
                    and not signin.identity.text()):
                self.shoot("signin", signin)
            windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, IssuanceWindow) and w.isVisible()]
            if windows:
                self._look_wizard(windows[0])
            super().look()

        def _look_wizard(self, window) -> None:
            if id(window) not in self._watched:
                self._watched.add(id(window))
                window.resize(*WIZARD_SIZE)
                window.controller.progressed.connect(lambda _event, w=window: self._progressed(w))
            flow, idle = window.flow, window.controller.running is None
            if self.phase == "first" and flow.phone_target:
                self._look_phone(window)
                return
            if self.phase == "second":
                if flow.request_id is not None and idle:
                    self.say(f"registrar leaves request {flow.request_id} for a supervisor and closes the wizard")
                    window.close()
                    self._start_tour()
                return
            if flow.current is Step.REQUEST and flow.request_id is None and flow.target and window.next_button.isEnabled():
                self.shoot("wizard-request", window)
            elif flow.current is Step.APPROVAL and idle and not window.lock.isVisible() and window.next_button.isEnabled():
                self.shoot("wizard-approval", window)
            lock = window.lock
            if lock.isVisible() and not lock.password.text() and lock.isEnabled() and not lock.status.text():
                lock.identity.setText("supervisor")
                lock.password.setText(OPERATORS["supervisor"])  # masked on the picture
                self.shoot("approval-lock", window)
                lock.password.clear()  # the scripted supervisor types it again (ScriptedPeople.look)
                lock.identity.clear()
            kiosk = window.kiosk
            if kiosk.isVisible() and kiosk.prompt is not None and not kiosk.pin.text():
                new = kiosk.prompt.kind is PromptKind.NEW_PIN
                credential = getattr(kiosk.prompt, "pin_kind", "") == "credential"
                if new:
                    kiosk.pin.setText("123456")  # a run: the policy says no, live
                    self.shoot("kiosk-new-pin", kiosk)
                    self.shoot("wizard-activation", window, over=kiosk)
                elif not credential:
                    kiosk.pin.setText("2468")  # half typed, masked
                    self.shoot("kiosk", kiosk)
                    self.shoot("wizard-pki-auth", window, over=kiosk)
                kiosk.pin.clear()
            if flow.finished and idle:
                self.shoot("wizard-self-test", window)
                self.receipt(window)

        def _look_phone(self, window) -> None:
            """The issuance onto the phone: its code (before the scripted applicant scans it), and
            the end."""
            flow = window.flow
            phone = window.phone if flow.shows_phone() else None
            if phone is not None and phone.isVisible() and phone.qr.showing and not phone.simulating:
                self.shoot("wizard-phone", window)
            if flow.finished and window.controller.running is None:
                self.shoot("wizard-phone-issued", window)

        def _progressed(self, window) -> None:
            if window.flow.phone_target:
                return
            step = window.flow.current
            if step is Step.KEY_GENERATION and window.flow.view(step).substeps:
                self.shoot("wizard-key-generation", window)  # the last one with the step current stays
            elif step is Step.DELIVERY:
                self.shoot("wizard-delivery", window)
            elif step is Step.ACTIVATION:  # the engine asks the new PIN earlier (see wizard-activation)
                self.shoot("wizard-activation-progress", window)

        def _finish(self, window) -> None:
            if self.phase != "first":
                return
            super()._finish(window)

        # --- the receipt ------------------------------------------------------------------------------
        def receipt(self, window) -> None:
            if not self.want("receipt") or any(p.stem.startswith("receipt") for p in self.taken):
                return
            from station.ui.receipt import write_receipt

            facts = window.receipt_facts()  # the wizard's own receipt, as "Save receipt" writes it
            scale = float(os.environ.get("QT_SCALE_FACTOR") or 1)
            with tempfile.TemporaryDirectory() as tmp:
                pdf = Path(tmp) / "receipt.pdf"
                write_receipt(pdf, facts)
                stem = self.out / f"receipt{self.suffix}"
                subprocess.run(["pdftoppm", "-png", "-r", str(int(RECEIPT_DPI * scale)), "-f", "1", "-l", "1",
                                "-singlefile", str(pdf), str(stem)], check=True, timeout=60)
            self.taken.append(stem.with_suffix(".png"))
            self.say(f"    picture: {stem.name}.png (the PDF's first page)")

        # --- after the issuance: a second request, then each role's main window ------------------------
        def done_first(self, results: list) -> None:
            """The issuance ended: close its wizard and open a second request."""
            self.say("registrar closes the wizard and starts a second request, to be approved later")
            self.phase = "second"
            if self.window is not None:
                self.window.close()
            self.window = None
            self._timer.start()
            main = self.shell.main_window
            QTimer.singleShot(0, main.new_issuance_requested.emit)

        def _start_tour(self) -> None:
            self.phase = "tour"
            self._next_operator()

        def _next_operator(self) -> None:
            self.shell.sign_out()
            identity = self.tour[0]
            signin = self.shell.signin
            self.say(f"{identity} signs in")
            signin.with_password.setChecked(True)
            signin.identity.setText(identity)
            signin.password.setText(passwords[identity])
            signin.submit()
            self._tour_wait = 0

        def _look_tour(self) -> None:
            main = self.shell.main_window
            if main is None or not main.isVisible():
                return
            if any(bar.isVisible() for bar in main.findChildren(QProgressBar)):
                return  # still loading its lists
            self._tour_wait += 1
            if self._tour_wait < 3:  # a few looks for the loaded lists to paint
                return
            identity = self.tour.pop(0)
            if identity == "auditor" and main.audit is not None:
                main.tabs.setCurrentWidget(main.audit)
            role = {"admin": "administrator"}.get(identity, identity)
            self.shoot(f"main-{role}", main)
            if self.tour:
                self._next_operator()
            else:
                self._timer.stop()
                self.done.emit(self.results)

    return Photographer


def take(out: Path, scale: float, say=print) -> list[Path]:
    """Every picture (or the main ones at ``scale`` != 1) into ``out``; the files written."""
    from PySide6.QtCore import QTimer, qInstallMessageHandler

    from station.sim.demo import ADMIN, OPERATORS, DemoEnvironment
    from station.ui.app import DemoInfo, Shell, prepare_application
    from station.ui.demo import _quiet_offscreen
    from station.ui.worker import QtDeviceWorker

    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if scale == 1 else f"@{scale:g}x"
    app = prepare_application(offscreen=os.environ.get("QT_QPA_PLATFORM") != "xcb")
    qInstallMessageHandler(_quiet_offscreen)
    with DemoEnvironment() as env:
        add_auditor(env)
        shell = Shell(env.home, QtDeviceWorker(), demo=DemoInfo(operators=dict(OPERATORS, **{ADMIN[0]: ADMIN[1]})),
                      show_dialogs=False)
        people = photographer_class()(shell, out, suffix, _names(scale), say)
        failure: list[str] = []

        def finished(results: list) -> None:
            if people.phase == "first":
                if not results or any(r["selftest"] != "pass" for r in results):
                    failure.append(f"the demo issuance did not pass: {results}")
                    app.exit(1)
                    return
                people.done_first(results)
            else:
                app.exit(0)

        people.done.connect(finished)
        shell.open_failed.connect(lambda error: (failure.append(f"the station cannot be opened: {error}"), app.exit(2)))
        QTimer.singleShot(300_000, lambda: (failure.append("the screenshots took too long"), app.exit(2)))
        shell.start()
        people.start()
        app.exec()
        shell.close_station()
    if failure:
        raise SystemExit(f"screenshots: {failure[0]}")
    return people.taken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.screenshots", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1, help="QT_SCALE_FACTOR (2: the main screens at 200 %%, <name>@2x.png)")
    parser.add_argument("--xvfb", action="store_true", help="under xvfb-run with the xcb platform instead of offscreen")
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder for the PNGs (default {OUT})")
    args = parser.parse_args(argv)
    if args.xvfb and os.environ.get("QT_QPA_PLATFORM") != "xcb":
        width, height = int(1600 * args.scale), int(1000 * args.scale)
        env = dict(os.environ, QT_QPA_PLATFORM="xcb")
        command = ["xvfb-run", "-a", "-s", f"-screen 0 {width}x{height}x24", sys.executable, "-m", "tools.screenshots",
                   "--scale", f"{args.scale:g}", "--out", str(args.out), "--xvfb"]
        return subprocess.run(command, env=env, cwd=Path(__file__).resolve().parents[1]).returncode
    if args.scale != 1:
        os.environ["QT_SCALE_FACTOR"] = f"{args.scale:g}"
    taken = take(args.out, args.scale)
    for path in taken:
        print(f"{path}  {path.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
