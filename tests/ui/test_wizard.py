"""The registrar's wizard driven end to end through its real windows: the golden GSA card over
the real pcscd, a SoftHSM token, the station's records, the engine on the device worker.

The people at the desk act only through widgets: the registrar's fresh sign-in in the
password dialog, the supervisor on the approval lock, the applicant on the kiosk's PIN pad.
A heartbeat on the GUI thread checks the event loop never stalls while the work runs."""

from __future__ import annotations


from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from station.issuance.progress import Step
from station.service.requests import state_of
from station.ui.wizard import IssuanceWindow, SecretDialog
from station.wizard.flow import Status
from bench.ui import Watchdog
from tests.conftest import TEST_PIN
from tests.issuance.people import NOTHING, ONE_CREDENTIAL, SECRETS, token_objects
from tests.ui.conftest import TRANSPORT

NEW_PIN = "73915824"
WAIT = 60_000


class Heartbeat(Watchdog):
    """bench/ui.py's watchdog (a 10 ms heartbeat on the GUI thread, and a thread noting what
    ran while a beat was late); :meth:`check` fails at ``limit_ms`` naming it."""

    def __init__(self):
        super().__init__(QApplication.instance(), [""])

    def check(self, limit_ms: float = 50):
        worst = max((stall["ms"] for stall in self.stalls), default=0.0)
        assert worst < limit_ms, f"the event loop stalled {worst:.0f} ms:\n{self.report(1)}"


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
    assert window.announced == "Step 2 of 7: Approval"  # and told to screen readers
    heart.check()
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


def kiosk_types(qtbot, window, pin: str, *, twice: bool = False) -> None:
    """The applicant types at the kiosk's pad (keyboard) and presses OK."""
    qtbot.waitUntil(lambda: (window.kiosk is not None and window.kiosk.prompt is not None and window.kiosk.isVisible())
                    or window.flow.view().problem is not None, timeout=WAIT)
    assert window.flow.view().problem is None, window.flow.view().problem
    kiosk = window.kiosk
    qtbot.keyClicks(kiosk.pin, pin)
    if twice:
        qtbot.keyClicks(kiosk.confirmation, pin)
    assert kiosk.ok_button.isEnabled(), kiosk.policy.text()
    qtbot.mouseClick(kiosk.ok_button, Qt.MouseButton.LeftButton)
    assert kiosk.pin.text() == "" and kiosk.confirmation.text() == ""


def supervisor_decides(qtbot, window, identity: str, secret: str, *, approve: bool = True, reason: str = "") -> None:
    qtbot.waitUntil(lambda: window.lock is not None and window.lock.isVisible(), timeout=WAIT)
    lock = window.lock
    assert lock.registrar.text() == window.ctx.operator.identity and lock.applicant.text() == "ICAM Test Card PIV Auth SP 800-73-4"
    lock.identity.clear()
    qtbot.keyClicks(lock.identity, identity)
    qtbot.keyClicks(lock.password, secret)
    if reason:
        qtbot.keyClicks(lock.reason, reason)
    qtbot.mouseClick(lock.approve if approve else lock.deny, Qt.MouseButton.LeftButton)


def open_request(qtbot, window, secret: str = SECRETS["reg"]) -> int:
    qtbot.waitUntil(lambda: window.next_button.isEnabled(), timeout=WAIT)
    qtbot.mouseClick(window.next_button, Qt.MouseButton.LeftButton)
    sign_in_dialog(qtbot, window, secret)
    qtbot.waitUntil(lambda: window.flow.request_id is not None and window.controller.running is None, timeout=WAIT)
    return window.flow.request_id


def test_a_full_issuance_through_the_windows_to_a_passing_self_test(qtbot, ctx, station, token):
    window = open_window(qtbot, ctx)
    with Heartbeat() as heart:
        request_id = open_request(qtbot, window)
        assert window.next_button.text() == "Supervisor approval…"
        qtbot.mouseClick(window.next_button, Qt.MouseButton.LeftButton)
        supervisor_decides(qtbot, window, "sup", SECRETS["sup"])
        qtbot.waitUntil(lambda: window.flow.current is Step.PKI_AUTH and window.controller.running is None, timeout=WAIT)
        assert not window.lock.isVisible() and window.next_button.isEnabled()
        qtbot.mouseClick(window.next_button, Qt.MouseButton.LeftButton)
        sign_in_dialog(qtbot, window, SECRETS["reg"])
        kiosk_types(qtbot, window, TEST_PIN)  # the PIV card's PIN
        kiosk_types(qtbot, window, NEW_PIN, twice=True)  # the new credential's PIN
        kiosk_types(qtbot, window, NEW_PIN)  # the self-test
        qtbot.waitUntil(lambda: window.flow.finished and window.controller.running is None, timeout=WAIT)
    assert window.flow.state.value == "issued", window.flow.view().problem
    assert "PASS" in window.pages[Step.SELF_TEST].verdict.text()
    heart.check()
    assert window.next_button.text() == "Done" and window.close_button.isEnabled()
    assert token_objects(token[0], NEW_PIN) == ONE_CREDENTIAL
    assert state_of(station, request_id) == "issued"


def test_the_registrar_cannot_approve_their_own_request_and_a_supervisor_denies(qtbot, ctx, station):
    from station.issuance.signin import hash_password, sign_in_with_password
    from station.service.operators import add_operator
    from station.terms import AuthMethod, Role

    # "dual" registers and supervises; "boss" supervises: dual opens the request and may not approve it
    add_operator(station, "dual", display_name="Dual", roles=[Role.REGISTRAR, Role.SUPERVISOR],
                 auth_method=AuthMethod.PASSWORD, auth_reference=hash_password("dual passphrase 3"), actor="admin")
    add_operator(station, "boss", display_name="Boss", roles=[Role.SUPERVISOR], auth_method=AuthMethod.PASSWORD,
                 auth_reference=hash_password("boss passphrase 4"), actor="admin")
    ctx.set_operator(sign_in_with_password(station, "dual", "dual passphrase 3"))
    window = open_window(qtbot, ctx)
    request_id = open_request(qtbot, window, "dual passphrase 3")
    qtbot.mouseClick(window.next_button, Qt.MouseButton.LeftButton)
    supervisor_decides(qtbot, window, "dual", "dual passphrase 3")  # the request's own registrar
    qtbot.waitUntil(lambda: window.controller.running is None and window.lock.banner.isVisible(), timeout=WAIT)
    assert window.lock.isVisible() and window.lock.password.text() == ""
    assert "cannot approve" in window.lock.banner.message.text()  # the refusal in words
    assert state_of(station, request_id) == "requested"
    supervisor_decides(qtbot, window, "boss", "boss passphrase 4", approve=False, reason="not the person on the card")
    qtbot.waitUntil(lambda: window.flow.finished and window.controller.running is None, timeout=WAIT)
    assert window.flow.state.value == "rejected" and not window.lock.isVisible()
    assert "rejected" in window.pages[Step.APPROVAL].problem.hint.text()
    assert state_of(station, request_id) == "rejected"
