"""The application shell (station/ui/app.py, signin.py, idle.py, main_window.py, registry.py)
on a real station home: sign-in through the service, the main window per role, the registry
(search, revoke), the audit view, the idle lock, the event loop kept free, `station gui`
without a display."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, QPointF, Qt, QTimer
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication, QWidget

from station.issuance.signin import hash_password
from station.service.operators import add_operator
from station.service.revocation import list_credentials
from station.terms import AuthMethod, Role
from station.ui.app import DemoInfo, Shell, display_problem
from station.ui.context import Settings, UiContext
from station.ui.idle import IdleLock
from station.ui.main_window import MainWindow
from station.ui.registry import recent_events
from station.ui.signin import SignInScreen, sign_in_job
from station.ui.worker import QtDeviceWorker
from tests.ca.ca_helpers import issue
from tests.issuance.people import SECRETS, add_password_operators

ROOT = Path(__file__).resolve().parents[2]
MORE = {"adm": ("administrator passphrase 3", Role.ADMINISTRATOR), "aud": ("auditor passphrase 4", Role.AUDITOR)}
WAIT = 20_000  # ms: an argon2id check on a busy 2-core machine


@pytest.fixture
def ctx(sqlite_station):
    station = add_password_operators(sqlite_station)
    for identity, (secret, role) in MORE.items():
        add_operator(station, identity, display_name=identity, roles=[role], auth_method=AuthMethod.PASSWORD,
                     auth_reference=hash_password(secret), actor="admin")
    worker = QtDeviceWorker()
    context = UiContext(station.home, station, worker, Settings(idle_lock_seconds=300))
    yield context
    worker.stop()


def secret_of(identity: str) -> str:
    return SECRETS.get(identity) or MORE[identity][0]


def signed(ctx, identity: str):
    """``identity`` signed in through the same job the screen runs (the service's sign-in)."""
    return sign_in_job(ctx.station, identity, [secret_of(identity)], None)


def try_sign_in(qtbot, screen: SignInScreen, identity: str, password: str):
    screen.identity.setText(identity)
    qtbot.keyClicks(screen.password, password)
    qtbot.mouseClick(screen.button, Qt.MouseButton.LeftButton)
    assert screen.password.text() == ""  # handed on, the field keeps nothing
    qtbot.waitUntil(lambda: screen._job is None, timeout=WAIT)


def test_wrong_then_right_password(qtbot, ctx):
    screen = SignInScreen(ctx)
    qtbot.addWidget(screen)
    screen.show()
    assert screen.with_password.isChecked() and screen.password.echoMode() == screen.password.EchoMode.Password
    try_sign_in(qtbot, screen, "reg", "not the passphrase")
    assert screen.error.isVisible() and "wrong password" in screen.error.text()
    assert "not the passphrase" not in screen.error.text() and screen.password.text() == ""
    refusals = [e for e in recent_events(ctx.station) if e["action"] == "operator.signin_refused"]
    assert refusals[0]["actor"] == "reg" and refusals[0]["details_json"]["rule"] == "signin.wrong_password"

    with qtbot.waitSignal(screen.signed_in, timeout=WAIT) as got:
        try_sign_in(qtbot, screen, "reg", SECRETS["reg"])
    assert got.args[0].identity == "reg" and got.args[0].roles == frozenset({"registrar"})
    assert not screen.error.isVisible() and screen.password.text() == ""
    assert recent_events(ctx.station)[0]["action"] == "operator.signed_in"


def test_unknown_operator_refused_in_words(qtbot, ctx):
    screen = SignInScreen(ctx)
    qtbot.addWidget(screen)
    try_sign_in(qtbot, screen, "nobody", "whatever it is")
    assert "no such active operator" in screen.error.text()
    assert [e["details_json"]["rule"] for e in recent_events(ctx.station)
            if e["action"] == "operator.signin_refused"] == ["signin.unknown_operator"]


def test_demo_mode_shows_the_demo_operators(qtbot, ctx):
    ctx.demo = DemoInfo({"reg": SECRETS["reg"]})
    screen = SignInScreen(ctx)
    qtbot.addWidget(screen)
    texts = [w.text() for w in screen.findChildren(type(screen.error))]
    assert SECRETS["reg"] in texts
    ctx.demo = None
    plain = SignInScreen(ctx)
    qtbot.addWidget(plain)
    assert SECRETS["reg"] not in [w.text() for w in plain.findChildren(type(plain.error))]


def test_without_passwords_the_card_is_the_way(qtbot, ctx):
    ctx.station.config["operators"] = {"allow_passwords": False}
    screen = SignInScreen(ctx)
    qtbot.addWidget(screen)
    screen.show()
    assert screen.with_card.isChecked() and not screen.with_password.isEnabled()
    assert screen.pin.isVisible() and not screen.password.isVisible() and screen.pin.echoMode() == screen.pin.EchoMode.Password


def window_for(qtbot, ctx, identity) -> MainWindow:
    ctx.set_operator(signed(ctx, identity))
    window = MainWindow(ctx)
    qtbot.addWidget(window)
    return window


def tab_names(window: MainWindow) -> list[str]:
    return [window.tabs.tabText(i).replace("&", "") for i in range(window.tabs.count())]


def test_the_roles_decide_what_the_window_shows(qtbot, ctx):
    registrar = window_for(qtbot, ctx, "reg")
    assert tab_names(registrar) == ["Requests"] and registrar.new_button is not None
    with qtbot.waitSignal(registrar.new_issuance_requested, timeout=1000):
        qtbot.mouseClick(registrar.new_button, Qt.MouseButton.LeftButton)
    assert "reg (registrar)" in registrar.who.text()
    supervisor = window_for(qtbot, ctx, "sup")
    assert tab_names(supervisor) == ["Approvals"] and supervisor.new_button is None
    admin = window_for(qtbot, ctx, "adm")
    assert tab_names(admin) == ["Credentials", "Audit trail"] and admin.registry.can_revoke
    auditor = window_for(qtbot, ctx, "aud")
    assert tab_names(auditor) == ["Credentials", "Audit trail"] and not auditor.registry.can_revoke
    assert auditor.registry.revoke_button.isHidden()


def test_requests_and_approvals_list_what_the_service_has(qtbot, ctx, pki):
    from tests.ca.ca_helpers import approved_request
    from station.service import issuance

    approved = approved_request(ctx.station, pki.piv_auth(name="Ann Approved"))
    _, pac = issuance.record_applicant(ctx.station, pki.piv_auth(name="Rita Requested"), actor="reg",
                                       fascn=os.urandom(25).hex(), cardholder_uuid="1f0c5d7e-0000-4000-8000-000000000001")
    waiting = issuance.open_request(ctx.station, pac, aal="AAL2", target_kind="software", registrar="reg")
    registrar = window_for(qtbot, ctx, "reg")
    qtbot.waitUntil(lambda: registrar.requests.model.rowCount() == 2, timeout=WAIT)
    assert registrar.requests.request_ids() == [approved, waiting]
    with qtbot.waitSignal(registrar.resume_requested, timeout=1000) as got:
        qtbot.mouseClick(registrar.requests.action, Qt.MouseButton.LeftButton)
    assert got.args == [approved]
    supervisor = window_for(qtbot, ctx, "sup")
    qtbot.waitUntil(lambda: not supervisor.approvals.busy.isVisibleTo(supervisor.approvals), timeout=WAIT)
    assert supervisor.approvals.request_ids() == [waiting]  # the approved one no longer waits
    with qtbot.waitSignal(supervisor.approve_requested, timeout=1000) as got:
        supervisor.approvals.action.click()
    assert got.args == [waiting]


def test_registry_search_show_and_revoke(qtbot, ctx, pki):
    first = issue(ctx.station, pki, piv_cert=pki.piv_auth(name="Alice Example"))[0]
    issue(ctx.station, pki, piv_cert=pki.piv_auth(name="Bob Example"))
    window = window_for(qtbot, ctx, "adm")
    registry = window.registry
    qtbot.waitUntil(lambda: registry.model.rowCount() == 2, timeout=WAIT)
    serial = list_credentials(ctx.station)[0].serial
    registry.search.setText("alice")
    assert registry.proxy.rowCount() == 1 and "1 of 2" in registry.count.text()
    registry.search.setText(serial[-8:].upper())
    assert registry.proxy.rowCount() == 1
    registry.search.setText("active")
    assert registry.proxy.rowCount() == 2
    registry.search.setText("")
    assert registry.select(serial) and registry.revoke_button.isEnabled()
    with qtbot.waitSignal(registry.revoked, timeout=WAIT) as got:
        registry.revoke_selected(reason="keyCompromise")
    assert got.args == [serial]
    assert {v.serial: v.status for v in list_credentials(ctx.station)}[serial] == "revoked"
    event = recent_events(ctx.station)[0]
    assert (event["action"], event["actor"], event["details_json"]["reason"]) == ("credential.revoked", "adm", "keyCompromise")
    qtbot.waitUntil(lambda: not registry.busy.isVisibleTo(registry), timeout=WAIT)
    registry.search.setText("revoked")
    assert registry.proxy.rowCount() == 1
    registry.search.setText("")
    registry.select(serial)
    assert not registry.revoke_button.isEnabled()  # already revoked
    assert first is not None


def test_auditor_cannot_revoke(qtbot, ctx, pki):
    issue(ctx.station, pki)
    registry = window_for(qtbot, ctx, "aud").registry
    qtbot.waitUntil(lambda: registry.model.rowCount() == 1, timeout=WAIT)
    registry.select(list_credentials(ctx.station)[0].serial)
    registry.revoke_selected(reason="keyCompromise")  # nothing happens: the button is not even there
    assert registry.busy.isHidden() and [v.status for v in list_credentials(ctx.station)] == ["active"]


def test_audit_view_lists_events_and_verifies_the_chain(qtbot, ctx):
    audit = window_for(qtbot, ctx, "aud").audit
    qtbot.waitUntil(lambda: audit.model.rowCount() > 0, timeout=WAIT)
    assert audit.model.index(0, 3).data() == "operator.signed_in"  # newest first
    with qtbot.waitSignal(audit.verified, timeout=WAIT) as got:
        audit.verify_button.click()
    assert got.args[0] is True and "intact" in audit.result.text()


def test_idle_lock_fires_and_input_postpones_it(qtbot):
    app = QApplication.instance()
    lock = IdleLock(0.3)
    app.installEventFilter(lock)
    target = QWidget()
    qtbot.addWidget(target)
    target.show()
    fired = []
    lock.locked.connect(lambda: fired.append(time.monotonic()))
    try:
        start = time.monotonic()
        lock.start()
        while time.monotonic() - start < 0.75:  # input every 0.1 s for longer than the timeout
            move = QMouseEvent(QEvent.Type.MouseMove, QPointF(5, 5), QPointF(5, 5), Qt.MouseButton.NoButton,
                               Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
            QApplication.sendEvent(target, move)
            qtbot.wait(100)
        assert fired == []
        qtbot.waitUntil(lambda: bool(fired), timeout=2000)
        assert fired[0] - start >= 0.75 + 0.2
    finally:
        app.removeEventFilter(lock)


def test_the_shell_locks_to_the_sign_in_screen_and_resumes(qtbot, ctx):
    ctx.settings.idle_lock_seconds = 0.3
    shell = Shell(ctx.home, ctx.worker, show_dialogs=False)
    shell.use(ctx)
    qtbot.addWidget(shell.signin)
    try:
        with qtbot.waitSignal(shell.main_window_created, timeout=WAIT):
            try_sign_in(qtbot, shell.signin, "reg", SECRETS["reg"])
        window = shell.main_window
        qtbot.addWidget(window)
        assert window.isVisible() and not shell.signin.isVisible() and ctx.operator.identity == "reg"
        qtbot.waitUntil(lambda: shell.signin.isVisible(), timeout=3000)
        assert ctx.operator is None and not window.isVisible() and not window.isEnabled()
        assert "locked" in shell.signin.notice.text()
        try_sign_in(qtbot, shell.signin, "reg", SECRETS["reg"])
        qtbot.waitUntil(lambda: window.isVisible(), timeout=WAIT)
        assert shell.main_window is window and window.isEnabled()  # the same operator finds their windows again
    finally:
        shell.idle.stop()
        QApplication.instance().removeEventFilter(shell.idle)


def test_the_event_loop_runs_while_a_password_is_checked(qtbot, ctx):
    """argon2id (~0.1 s) runs on the worker: the GUI thread's 10 ms timer never waits > 50 ms."""
    screen = SignInScreen(ctx)
    qtbot.addWidget(screen)
    ticks: list[float] = []
    beat = QTimer()
    beat.setInterval(10)
    beat.timeout.connect(lambda: ticks.append(time.monotonic()))
    beat.start()
    qtbot.wait(50)
    started = time.monotonic()
    with qtbot.waitSignal(screen.signed_in, timeout=WAIT):
        try_sign_in(qtbot, screen, "sup", SECRETS["sup"])
    qtbot.wait(30)
    beat.stop()
    during = [t for t in ticks if t >= started - 0.02]
    gaps = [b - a for a, b in zip(during, during[1:])]
    assert time.monotonic() - started > 0.05 and len(gaps) > 3
    assert max(gaps) < 0.05, f"the event loop stalled {max(gaps) * 1000:.0f} ms"


def test_the_shell_opens_the_station_on_the_worker_then_asks_for_sign_in(qtbot, ctx):
    worker = QtDeviceWorker()
    shell = Shell(ctx.home, worker, show_dialogs=False)
    try:
        with qtbot.waitSignal(shell.opened, timeout=WAIT) as got:
            shell.start()
            assert shell.opening.isVisible() and "Opening the station" in shell.opening.label.text()
        assert got.args[0] is shell.ctx and shell.ctx.station is not ctx.station and shell.ctx.operator is None
        assert shell.signin.isVisible() and shell.opening is None and shell.exit_code == 0
        assert shell.ctx.station.config["station_id"] == ctx.station.config["station_id"]
    finally:
        if shell.idle is not None:
            QApplication.instance().removeEventFilter(shell.idle)
        if shell.signin is not None:
            shell.signin.close()
        shell.close_station()


def test_a_station_that_cannot_open_is_one_error_and_exit_2(qtbot, tmp_path):
    from station.home import StationHome

    worker = QtDeviceWorker()
    shell = Shell(StationHome(tmp_path / "no-home"), worker, show_dialogs=False)
    try:
        with qtbot.waitSignal(shell.open_failed, timeout=WAIT) as got:
            shell.start()
        assert shell.exit_code == 2 and shell.ctx is None
        assert getattr(got.args[0], "hint", "")  # what to do is said
    finally:
        shell.opening.close()
        worker.stop()


def test_display_problem_reads_the_environment():
    assert display_problem({}) is not None
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    assert display_problem({"DISPLAY": ":0"}) is None
    assert display_problem({"QT_QPA_PLATFORM": "xcb"}) is not None
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}) is None


def test_station_gui_without_a_display_says_so_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-m", "station", "gui", "--home", str(tmp_path)], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("station: no display") and len(out.stderr.strip().splitlines()) == 1
    assert "Aborted" not in out.stderr and "platform plugin" not in out.stderr


def test_keyboard_only_sign_in(qtbot, ctx):
    """Type the identity, Tab past the method to the password, Enter: signed in."""
    screen = SignInScreen(ctx)
    qtbot.addWidget(screen)
    screen.show()
    screen.activateWindow()
    qtbot.waitUntil(lambda: screen.identity.hasFocus(), timeout=5000)
    qtbot.keyClicks(screen.identity, "sup")
    qtbot.keyClick(screen.identity, Qt.Key.Key_Tab)
    assert screen.focusWidget() is screen.with_password
    qtbot.keyClick(screen.with_password, Qt.Key.Key_Tab)  # one stop for the method (arrow keys choose)
    assert screen.focusWidget() is screen.password
    qtbot.keyClicks(screen.password, SECRETS["sup"])
    with qtbot.waitSignal(screen.signed_in, timeout=WAIT) as got:
        qtbot.keyClick(screen.password, Qt.Key.Key_Return)
    assert got.args[0].identity == "sup" and screen.password.text() == ""


def test_sign_out_returns_to_the_sign_in_screen_and_the_application_stays(qtbot, ctx):
    shell = Shell(ctx.home, ctx.worker, show_dialogs=False)
    shell.use(ctx)
    qtbot.addWidget(shell.signin)
    quits = []
    QApplication.instance().lastWindowClosed.connect(lambda: quits.append(True))
    try:
        with qtbot.waitSignal(shell.main_window_created, timeout=WAIT) as got:
            try_sign_in(qtbot, shell.signin, "adm", MORE["adm"][0])
        window = got.args[0]
        qtbot.addWidget(window)
        window.sign_out_action.trigger()
        assert ctx.operator is None and shell.main_window is None and not window.isVisible()
        assert shell.signin.isVisible() and "Signed out" in shell.signin.notice.text() and quits == []
    finally:
        shell.idle.stop()
        QApplication.instance().removeEventFilter(shell.idle)
