"""The demo in windows: the station's own shell over the embedded demo world
(:class:`station.sim.demo.DemoEnvironment`), a small "demo controls" window that puts the
applicant's card in and pulls it, and plugs the token in and out, the wizard's "Simulate
phone" (:class:`PhoneSimulator`: the reference phone client scanning the code on screen), and
— without a display — a scripted registrar, supervisor and applicant who drive the same
windows offscreen through a whole issuance onto each target the demo offers, acting only
through the widgets a person would use.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QObject, Qt, QTimer, Signal, qInstallMessageHandler
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QGroupBox, QLabel, QPushButton, QVBoxLayout, QWidget

from station.sim.demo import ADMIN, CARD_PIN, NEW_PIN, OPERATORS, DemoEnvironment
from station.ui.wizard import IssuanceWindow, SecretDialog  # imported here, not on the GUI thread mid-run


def tr(text: str) -> str:
    return QCoreApplication.translate("station", text)


class DemoControls(QWidget):
    """What a person would do with their hands: the card, the token."""

    changed = Signal()

    def __init__(self, env: DemoEnvironment, parent: QWidget | None = None):
        super().__init__(parent, Qt.WindowType.Tool)
        self.env = env
        self.setWindowTitle(tr("Demo controls"))
        layout = QVBoxLayout(self)
        note = QLabel(tr("This is a demonstration station: the card and the token are virtual."))
        note.setWordWrap(True)
        layout.addWidget(note)
        card = QGroupBox(tr("Applicant's PIV card (GSA ICAM golden test card, PIN {pin})").format(pin=CARD_PIN))
        card_layout = QVBoxLayout(card)
        self.insert_card = QPushButton(tr("&Insert the card"))
        self.remove_card = QPushButton(tr("&Pull the card"))
        for button in (self.insert_card, self.remove_card):
            card_layout.addWidget(button)
        layout.addWidget(card)
        if env.target == "phone":
            note.setText(tr("This is a demonstration station: the card is virtual, and the wizard's "
                            "“Simulate phone” plays the applicant's phone."))
        token = QGroupBox(tr("Target token (virtual PIV token)") if env.target == "piv" else tr("Target token (SoftHSM)"))
        token_layout = QVBoxLayout(token)
        self.plug = QPushButton(tr("Plug in a &fresh token"))
        self.unplug = QPushButton(tr("&Unplug the token"))
        for button in (self.plug, self.unplug):
            token_layout.addWidget(button)
        layout.addWidget(token)
        token.setVisible(env.target != "phone")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setAccessibleName(tr("Demo status"))
        layout.addWidget(self.status)
        self.insert_card.clicked.connect(lambda: self._card(True))
        self.remove_card.clicked.connect(lambda: self._card(False))
        self.plug.clicked.connect(lambda: self._token(env.plug_token, tr("A fresh token is plugged in.")))
        self.unplug.clicked.connect(lambda: self._token(env.unplug_token, tr("The token is unplugged.")))
        self._card_buttons()

    def _card(self, insert: bool) -> None:
        (self.env.insert_card if insert else self.env.remove_card)()  # in-process: instant
        self.status.setText(tr("The card is in the reader.") if insert else tr("The card is out of the reader."))
        self._card_buttons()
        self.changed.emit()

    def _card_buttons(self) -> None:
        present = self.env.card_present()
        self.insert_card.setEnabled(not present)
        self.remove_card.setEnabled(present)

    def _token(self, action, done: str) -> None:
        """softhsm2-util runs on a thread of its own: the event loop never waits for it."""
        for button in (self.plug, self.unplug):
            button.setEnabled(False)
        self.status.setText(tr("Working…"))

        def work():
            action()
            QTimer.singleShot(0, self, lambda: self._token_done(done))

        threading.Thread(target=work, name="demo-token", daemon=True).start()

    def _token_done(self, done: str) -> None:
        for button in (self.plug, self.unplug):
            button.setEnabled(True)
        self.status.setText(done)
        self.changed.emit()


class PhoneSimulator(QObject):
    """The demo's phone: the reference phone client (:mod:`station.phone.client`) on a thread
    of its own. It reads the code from the picture on screen (a PNG of the QR widget, decoded by
    zbarimg: what is painted is scannable), enrolls with the demo's PIN into a throwaway store,
    with a TEST key attestation when the request is AAL3 (the demo station trusts the test
    root). ``finished(words)`` on the GUI thread; the PIN and the code are never in them."""

    finished = Signal(str)

    def run(self, picture: QImage, *, aal3: bool) -> None:
        picture = picture.copy()  # the thread's own

        def work() -> None:
            from station.enrollment.qr import EnrollmentPayload
            from station.phone.client import enroll, read_qr

            try:
                with tempfile.TemporaryDirectory(prefix="station-demo-phone-") as tmp:
                    png = Path(tmp) / "screen.png"
                    if not picture.save(str(png), "PNG"):
                        raise OSError("the picture of the code cannot be written")
                    result = enroll(EnrollmentPayload.parse(read_qr(png)), pin=NEW_PIN, store=Path(tmp) / "phone",
                                    test_attestation=aal3).as_json()
                words = tr("The simulated phone enrolled; its self-test: {result}.").format(result=result["selftest"])
            except Exception as exc:  # noqa: BLE001 - the phone's failure, shown in words
                words = tr("The simulated phone stopped: {error}").format(error=exc)
            try:
                self.finished.emit(words)  # tr() is thread-safe
            except RuntimeError:  # the window is gone
                pass

        threading.Thread(target=work, name="demo-phone", daemon=True).start()


class ScriptedPeople(QObject):
    """The registrar, the supervisor and the applicant of the headless demo. Every 50 ms they
    look at the windows and do what a person would: sign in, start a new credential, choose the
    target, press Next, type a password into the sign-in dialog, approve on the lock screen,
    type PINs on the kiosk, press "Simulate phone" when the phone's code shows. One request per
    target offered, in order; ``done(results)`` when the last has ended."""

    done = Signal(list)

    def __init__(self, shell, say=print, parent: QObject | None = None):
        super().__init__(parent)
        self.shell, self.say = shell, say
        self.window = None
        self.results: list[dict] = []
        self._said: set[str] = set()
        self._scanned = ""  # the phone's code last scanned
        self._timer = QTimer(self)
        self._timer.setInterval(50)
        self._timer.timeout.connect(self.look)

    def start(self) -> None:
        self.shell.main_window_created.connect(lambda main: QTimer.singleShot(0, main.new_issuance_requested.emit))
        self._timer.start()

    def _once(self, key: str, text: str) -> None:
        if key not in self._said:
            self._said.add(key)
            self.say(text)

    def look(self) -> None:
        signin = self.shell.signin
        if signin is not None and signin.isVisible() and signin.isEnabled() and not signin.identity.text():
            self._once("signin", "registrar signs in to the station")
            signin.with_password.setChecked(True)
            signin.identity.setText("registrar")
            signin.password.setText(OPERATORS["registrar"])
            signin.submit()
            return
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, IssuanceWindow) and w.isVisible()]
        if not windows:
            return
        window = self.window = windows[0]
        flow = window.flow
        for dialog in window.findChildren(SecretDialog):
            if dialog.isVisible() and not dialog.secret.text():
                self.say(f"{dialog.prompt.operator} signs in afresh to {dialog.prompt.purpose}")
                dialog.secret.setText(OPERATORS[dialog.prompt.operator])
                dialog.accept()
                return
        if window.controller.running is None and flow.request_id is None and flow.target is None and flow.targets:
            offer = flow.targets[len(self.results) % len(flow.targets)]
            combo = window.request_page.targets
            index = combo.findData(offer.name)
            if offer.present and index >= 0:
                self.say(f"registrar chooses “{offer.name}” as the target")
                combo.setCurrentIndex(index)
                combo.activated.emit(index)
            return
        phone = window.phone if flow.shows_phone() else None
        if (phone is not None and phone.isVisible() and phone.simulate.isVisible() and phone.simulate.isEnabled()
                and flow.seconds_left(time.time()) > 0 and flow.phone.uri != self._scanned):
            self._scanned = flow.phone.uri  # each code once (kept in memory only)
            self.say("the applicant scans the code with the phone (the reference phone client) and sets the PIN on it")
            phone.simulate.click()
            return
        kiosk = window.kiosk
        if kiosk.isVisible() and kiosk.prompt is not None and not kiosk.pin.text():
            new = kiosk.confirmation.isVisible()
            credential = getattr(kiosk.prompt, "pin_kind", "") == "credential"
            pin = NEW_PIN if new or credential else CARD_PIN
            self.say("the applicant " + ("chooses the new PIN at the kiosk, twice" if new else
                                         "types the new PIN for the self-test" if credential else
                                         "types the PIV card's PIN at the kiosk"))
            kiosk.pin.setText(pin)
            if new:
                kiosk.confirmation.setText(pin)
            kiosk.ok_button.click()
            return
        lock = window.lock
        if lock.isVisible() and not lock.password.text() and lock.isEnabled() and not lock.status.text():
            self.say(f"supervisor approves request {flow.request_id} on the approval screen")
            lock.identity.setText("supervisor")
            lock.password.setText(OPERATORS["supervisor"])
            lock.approve.click()
            return
        for step, page in flow.pages.items():
            if page.message:
                self._once(f"{step.value}:{page.message}", f"  [{step.value}] {page.message}")
        for event in flow.phone.steps:
            self._once(f"phone:{event.kind}:{event.detail}", f"  [phone] {event.detail}")
        if flow.finished and window.controller.running is None:
            self._finish(window)
            return
        problem = flow.view().problem
        if problem is not None and window.controller.running is None:
            self.say(f"stopped: {problem.message} ({problem.hint})")
            self._finish(window)
            return
        if window.next_button.isEnabled() and window.controller.running is None and not lock.isVisible():
            self.say(f"registrar presses “{window.next_button.text()}”")
            window.next_button.click()

    def _finish(self, window) -> None:
        flow = window.flow
        outcome = flow.outcome
        result = getattr(outcome, "selftest", None)
        self.results.append({
            "target_kind": flow.target.kind if flow.target else "",
            "request_id": flow.request_id,
            "state": flow.state.value if flow.state else None,
            "serial": getattr(outcome, "serial", None),
            "policy_oid": str(getattr(outcome, "policy", "") or "") or None,
            "selftest": ("pass" if result is not None and getattr(result, "passed", False) else "fail"),
        })
        if len(self.results) < len(flow.targets):  # the next target, in a new request
            self.say("registrar closes the wizard and starts a new credential for the next target")
            window.close()
            self._said.clear()
            QTimer.singleShot(0, self.shell.main_window.new_issuance_requested.emit)
            return
        self._timer.stop()
        self.done.emit(self.results)


def _quiet_offscreen(kind, context, message: str) -> None:
    """The offscreen platform's notes that it cannot move or size windows are not news."""
    if "This plugin does not support" not in message:
        print(message, file=sys.stderr)


def _shell(env: DemoEnvironment, worker):
    from station.ui.app import DemoInfo, Shell

    return Shell(env.home, worker, demo=DemoInfo(operators=dict(OPERATORS, **{ADMIN[0]: ADMIN[1]})), show_dialogs=False)


def run_windows(env: DemoEnvironment) -> int:
    """The demo on a display: the shell, the demo controls beside it."""
    from station.ui.app import prepare_application
    from station.ui.worker import QtDeviceWorker

    app = prepare_application()
    shell = _shell(env, QtDeviceWorker())
    shell.show_dialogs = True
    controls = DemoControls(env)
    shell.open_failed.connect(lambda _: app.exit(shell.exit_code))
    shell.start()
    controls.show()
    code = app.exec()
    shell.close_station()
    return shell.exit_code or code


def run_headless(env: DemoEnvironment, say=print, timeout: float = 300.0) -> list[dict]:
    """The same windows offscreen, driven by :class:`ScriptedPeople` through one issuance per
    target the demo offers (its token, then the phone); the results, one per target."""
    from station.ui.app import prepare_application
    from station.ui.worker import QtDeviceWorker

    app = prepare_application(offscreen=True)
    qInstallMessageHandler(_quiet_offscreen)
    shell = _shell(env, QtDeviceWorker())
    people = ScriptedPeople(shell, say)
    results: list[dict] = []

    def finished(found: list) -> None:
        results.extend(found)
        if people.window is not None:
            people.window.close()
        app.exit(0)

    people.done.connect(finished)
    shell.open_failed.connect(lambda error: (say(f"the station cannot be opened: {error}"), app.exit(2)))
    QTimer.singleShot(int(timeout * 1000), lambda: (say("the demo took too long; stopping"), app.exit(2)))
    shell.start()
    people.start()
    app.exec()
    shell.close_station()
    return results
