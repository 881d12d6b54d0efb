"""The registrar's wizard driven end to end through its real windows: the golden GSA card over
the real pcscd, a SoftHSM token, the station's records, the engine on the device worker.

The people at the desk act only through widgets: the registrar's fresh sign-in in the
password dialog, the supervisor on the approval lock, the applicant on the kiosk's PIN pad.
A heartbeat on the GUI thread checks the event loop never stalls while the work runs."""

from __future__ import annotations

import time
import uuid

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

from station.devices.virtual import load_card_image
from station.issuance.progress import Step
from station.issuance.signin import sign_in_with_password
from station.ui.context import Settings, UiContext
from station.ui.wizard import IssuanceWindow, SecretDialog
from station.ui.worker import QtDeviceWorker
from station.wizard.flow import Status
from tests.conftest import GOLDEN, TEST_PIN, init_softhsm_token
from tests.issuance.people import NOTHING, ONE_CREDENTIAL, SECRETS, add_password_operators, token_objects

TRANSPORT, NEW_PIN = "55667788", "73915824"
WAIT = 60_000


class Heartbeat:
    """A 10 ms timer on the GUI thread; ``worst`` is the longest gap between two beats (s)."""

    def __init__(self):
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.last, self.worst = None, 0.0
        self.timer.timeout.connect(self.beat)

    def beat(self):
        now = time.perf_counter()
        if self.last is not None:
            self.worst = max(self.worst, now - self.last)
        self.last = now

    def __enter__(self):
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.stop()


@pytest.fixture
def station(sqlite_station, icam_profile_path):
    sqlite_station.config["trust_profile"] = str(icam_profile_path)
    return add_password_operators(sqlite_station)


@pytest.fixture
def token(softhsm_conf):
    label = f"ui-{uuid.uuid4().hex[:8]}"
    return label, init_softhsm_token(label, TRANSPORT)


@pytest.fixture
def ctx(qtbot, station, token, insert_card, pcscd):
    insert_card(load_card_image(GOLDEN, pin=TEST_PIN))
    worker = QtDeviceWorker()
    context = UiContext(station.home, station, worker, Settings(targets={"SoftHSM token": token[1]}))
    context.set_operator(sign_in_with_password(station, "reg", SECRETS["reg"]))
    yield context
    worker.stop()


def open_window(qtbot, ctx, **options) -> IssuanceWindow:
    window = IssuanceWindow(ctx, **options)
    qtbot.addWidget(window)
    window.show()
    return window


def sign_in_dialog(qtbot, window, secret: str) -> None:
    """The registrar types their password into the fresh sign-in dialog and presses Enter."""
    qtbot.waitUntil(lambda: bool(window.findChildren(SecretDialog)) and window.findChildren(SecretDialog)[-1].isVisible(),
                    timeout=WAIT)
    dialog = window.findChildren(SecretDialog)[-1]
    qtbot.keyClicks(dialog.secret, secret)
    qtbot.keyClick(dialog.secret, "\r")
    assert dialog.secret.text() == ""  # handed on, not kept


def test_the_request_page_fills_itself_and_opens_the_request(qtbot, ctx, station):
    window = open_window(qtbot, ctx)
    qtbot.waitUntil(lambda: window.flow.applicant is not None and window.flow.target is not None, timeout=WAIT)
    page = window.request_page
    assert page.name.text() == "ICAM Test Card PIV Auth SP 800-73-4" and len(page.fascn.text()) == 50  # read, no PIN
    assert not page.aal_buttons["AAL3"].isEnabled() and "not one" in page.aal_reason.text()  # SoftHSM is not hardware
    assert window.next_button.isEnabled() and window.next_button.text() == "Open the request"
    with Heartbeat() as heart:
        qtbot.mouseClick(window.next_button, Qt.MouseButton.LeftButton)
        assert window.cancel_button.isEnabled() and not window.next_button.isEnabled()
        sign_in_dialog(qtbot, window, SECRETS["reg"])
        qtbot.waitUntil(lambda: window.flow.request_id is not None and window.controller.running is None, timeout=WAIT)
    assert window.flow.current is Step.APPROVAL and window.flow.view(Step.REQUEST).status is Status.DONE
    assert "waits for a supervisor" in window.pages[Step.APPROVAL].message.text()
    assert window.steps.item(1).font().bold()  # the current step is marked
    assert heart.worst < 0.05, f"the event loop stalled {heart.worst * 1000:.0f} ms"
    from station.service.requests import state_of

    assert state_of(station, window.flow.request_id) == "requested"


def test_cancel_while_the_registrar_is_asked_leaves_nothing(qtbot, ctx, station, token):
    window = open_window(qtbot, ctx)
    qtbot.waitUntil(lambda: window.next_button.isEnabled(), timeout=WAIT)
    qtbot.mouseClick(window.next_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(window.findChildren(SecretDialog)), timeout=WAIT)
    qtbot.mouseClick(window.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.controller.running is None, timeout=WAIT)
    problem = window.flow.view().problem
    assert problem is not None and "nothing was kept" in problem.hint
    assert not any(d.isVisible() for d in window.findChildren(SecretDialog))  # the question is withdrawn
    assert window.request_page.problem.isVisible()
    from station.service.requests import listing

    assert listing(station) == [] and token_objects(token[0], TRANSPORT) == NOTHING
    assert window.close_button.isEnabled()
    window.close()
    QApplication.processEvents()
    assert not window.isVisible()


def test_a_window_cannot_close_while_work_runs(qtbot, ctx):
    window = open_window(qtbot, ctx)
    qtbot.waitUntil(lambda: window.next_button.isEnabled(), timeout=WAIT)
    qtbot.mouseClick(window.next_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(window.findChildren(SecretDialog)), timeout=WAIT)
    window.close()
    assert window.isVisible() and not window.close_button.isEnabled()
    qtbot.mouseClick(window.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.controller.running is None, timeout=WAIT)


_ = ONE_CREDENTIAL
