"""The wizard onto a phone: the QR code painted by the wizard itself (whole-pixel modules, only
black and white, decoded by zbarimg, a decoder nobody here wrote), its countdown, and a whole
issuance through the real windows: the golden card over pcscd, the station's enrollment
service on a loopback port, New code (the old code refused by the registry at once), and the
demo's Simulate phone running the reference phone client against the code on screen."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from station.devices.virtual import load_card_image
from station.enrollment.binding import BindingRefused, Refusal
from station.enrollment.qr import EnrollmentPayload, matrix
from station.enrollment.test_attestation import TEST_ROOT_CERT
from station.issuance.progress import Step
from station.issuance.signin import sign_in_with_password
from station.issuance.targets.phone import PhoneEvent
from station.phone.client import read_qr
from station.service.requests import state_of
from station.ui.app import DemoInfo
from station.ui.context import Settings, UiContext
from station.ui.phone import PhonePanel, QrCode, module_size
from station.ui.worker import QtDeviceWorker
from station.wizard.flow import IssuanceFlow, Operation, TargetOffer
from tests.conftest import GOLDEN, TEST_PIN
from tests.issuance.people import SECRETS
from tests.ui.test_wizard import WAIT, Heartbeat, kiosk_types, open_request, open_window, sign_in_dialog, supervisor_decides

ROOT = Path(__file__).resolve().parents[2]
URI = ("dpiv://enroll?v=1&est=https%3A%2F%2F127.0.0.1%3A43123%2F.well-known%2Fest%2Fr7-0a1b2c3d%2F&fp=" + "ab" * 32
       + "&user=request-7&otp=mfrggzdfmztwq2lknnwg23tpob&exp=1790000000")


def painted(folder: Path, scale: float = 1) -> Path:
    """The QR widget at ``scale`` (the process's QT_SCALE_FACTOR), checked module by module on
    its picture: squares of whole device pixels, black or white, nothing between; the PNG."""
    qr = QrCode()
    rows = matrix(URI)
    qr.set_modules(rows)
    qr.resize(347, 330)
    qr.show()
    image = qr.grab().toImage()
    assert image.devicePixelRatio() == scale and image.height() == round(330 * scale)
    module = module_size(min(image.width(), image.height()), len(rows))
    assert qr.module_pixels() == module == int(330 * scale) // len(rows) >= 4 * scale and qr.minimumWidth() >= 300
    left, top = (image.width() - module * len(rows)) // 2, (image.height() - module * len(rows)) // 2
    for y, row in enumerate(rows):
        for x, dark in enumerate(row):
            block = {image.pixel(left + x * module + dx, top + y * module + dy)
                     for dx in range(module) for dy in range(module)}
            assert block == {0xFF000000 if dark else 0xFFFFFFFF}, (x, y)  # one colour per module: no smoothing
    assert {image.pixel(x, y) for x in range(image.width()) for y in range(image.height())} == {0xFF000000, 0xFFFFFFFF}
    png = folder / f"qr@{scale:g}x.png"
    assert image.save(str(png), "PNG")
    qr.close()
    return png


def test_the_qr_code_is_painted_in_whole_pixel_modules_and_zbarimg_reads_it(qtbot, tmp_path):
    qr = QrCode()
    qtbot.addWidget(qr)
    assert qr.accessibleName() == "Enrollment code for the applicant's phone" and "scan" in qr.accessibleDescription()
    assert read_qr(painted(tmp_path)) == URI


@pytest.mark.parametrize("scale", [2, 1.5])
def test_at_200_and_150_percent_the_modules_are_still_whole_device_pixels_and_read(tmp_path, scale):
    probe = ("import sys; from pathlib import Path; from PySide6.QtWidgets import QApplication; app = QApplication([]); "
             "from tests.ui.test_phone import painted; print(painted(Path(sys.argv[1]), float(sys.argv[2])))")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QT_SCALE_FACTOR=str(scale), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", probe, str(tmp_path), str(scale)], capture_output=True, text=True, timeout=60,
                          env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert read_qr(Path(done.stdout.strip())) == URI


def test_the_countdown_counts_each_second_and_says_when_the_code_has_expired(qtbot):
    now = [1000.0]
    panel = PhonePanel(clock=lambda: now[0])
    qtbot.addWidget(panel)
    flow = IssuanceFlow.resume(7, "authenticated")
    flow.set_targets([TargetOffer("Phone", "phone:", kind="phone", hardware=True)])
    flow.started(Operation.COMPLETE)
    flow.phone_event(PhoneEvent("code", "scan", URI, 1581), matrix(URI))
    panel.render(flow)
    assert panel.countdown.text() == "Code expires in 9:41" and panel.qr.showing and panel.timer.isActive()
    assert panel.new_code.isEnabled() and panel.new_code.text() == "&New code" and not panel.simulate.isVisibleTo(panel)
    now[0] = 1580.2
    panel.tick()
    assert panel.countdown.text() == "Code expires in 0:01"
    now[0] = 1581
    panel.tick()
    assert panel.countdown.text() == "Code expired — press New code" and not panel.qr.showing  # a dead code is not shown


@pytest.fixture
def phone_ctx(qtbot, station, insert_card, pcscd):
    station.config["enrollment"] = {**station.config["enrollment"], "port": 0,
                                    "attestation_roots": [str(TEST_ROOT_CERT)]}
    insert_card(load_card_image(GOLDEN, pin=TEST_PIN))
    worker = QtDeviceWorker()
    context = UiContext(station.home, station, worker, Settings(targets={"Phone": "phone:"}),
                        demo=DemoInfo({"reg": SECRETS["reg"]}))  # the demo's Simulate phone
    context.set_operator(sign_in_with_password(station, "reg", SECRETS["reg"]))
    yield context
    worker.stop()


def to_the_phone(qtbot, window, station) -> int:
    """The request opened, approved and the applicant's card authenticated: step 4 begins."""
    qtbot.waitUntil(lambda: window.flow.target is not None, timeout=WAIT)
    offer = window.flow.target
    assert (offer.kind, offer.hardware, offer.present) == ("phone", True, True)  # described without the service
    assert station._enrollment is None
    request_id = open_request(qtbot, window)
    qtbot.mouseClick(window.next_button, Qt.MouseButton.LeftButton)
    supervisor_decides(qtbot, window, "sup", SECRETS["sup"])
    qtbot.waitUntil(lambda: window.flow.current is Step.PKI_AUTH and window.controller.running is None, timeout=WAIT)
    qtbot.mouseClick(window.next_button, Qt.MouseButton.LeftButton)
    sign_in_dialog(qtbot, window, SECRETS["reg"])
    kiosk_types(qtbot, window, TEST_PIN)  # PKI-AUTH; no new PIN at the kiosk: the applicant sets it on the phone
    return request_id


def test_onto_a_phone_new_code_kills_the_old_one_and_the_phone_scanning_the_screen_is_issued(qtbot, phone_ctx, station):
    window = open_window(qtbot, phone_ctx)
    request_id = to_the_phone(qtbot, window, station)
    with Heartbeat() as heart:  # the QR codes are made off the GUI thread, the new one too
        qtbot.waitUntil(lambda: window.flow.shows_phone() and window.phone.qr.showing, timeout=WAIT)
        check_new_code(qtbot, window, station, request_id)
        assert window.phone.simulate.isVisible()
        qtbot.mouseClick(window.phone.simulate, Qt.MouseButton.LeftButton)  # zbarimg reads the widget's picture
        qtbot.waitUntil(lambda: window.flow.finished and window.controller.running is None, timeout=WAIT)
    heart.check()
    panel = window.phone
    assert window.flow.state.value == "issued", window.flow.view().problem
    assert [s.kind for s in window.flow.phone.steps] == ["enrolling", "enrolled", "activated", "selftest"]
    qtbot.waitUntil(lambda: "self-test: pass" in panel.note.text(), timeout=WAIT)
    texts = [panel.steps.item(i).text() for i in range(panel.steps.count())]
    assert texts[-1] == "✓ Self-test passed" and "✓ PIN set on the phone" in texts
    assert panel.parentWidget() is window.pages[Step.SELF_TEST] and not panel.qr.isVisible()
    assert "PASS" in window.pages[Step.SELF_TEST].verdict.text()
    assert state_of(station, request_id) == "issued"


def check_new_code(qtbot, window, station, request_id: int) -> None:
    """New code: a new URI on screen, the old label unknown to the registry at once."""
    panel = window.phone
    assert panel.isVisible() and panel.parentWidget() is window.pages[Step.KEY_GENERATION]
    assert panel.countdown.text() in ("Code expires in 10:00", "Code expires in 9:59")
    old = EnrollmentPayload.parse(window.flow.phone.uri)
    old_label = old.est.rstrip("/").rsplit("/", 1)[1]

    panel.new_code.setFocus()
    qtbot.keyClick(panel.new_code, Qt.Key.Key_Space)  # from the keyboard
    qtbot.waitUntil(lambda: window.flow.phone.uri != old.uri(), timeout=WAIT)
    registry = station._enrollment.registry
    with pytest.raises(BindingRefused) as refused:
        registry.check(old_label, old.user, old.otp)
    assert refused.value.reason is Refusal.UNKNOWN_LABEL  # the old code died at once
    new = EnrollmentPayload.parse(window.flow.phone.uri)
    assert registry.check(new.est.rstrip("/").rsplit("/", 1)[1], new.user, new.otp).request_id == request_id
    qtbot.waitUntil(lambda: panel.qr.modules == window.flow.phone.modules, timeout=WAIT)  # the new code is on screen


def test_an_expired_code_says_so_and_new_code_goes_on_with_the_request(qtbot, phone_ctx, station):
    station.config["enrollment"]["code_minutes"] = 0.1  # 6 s: time for the phone on a busy machine, not much to wait
    window = open_window(qtbot, phone_ctx)
    request_id = to_the_phone(qtbot, window, station)
    qtbot.waitUntil(lambda: window.flow.shows_phone() and window.phone.qr.showing, timeout=WAIT)
    panel = window.phone
    qtbot.waitUntil(lambda: window.controller.running is None, timeout=WAIT)  # the engine stopped waiting
    assert panel.countdown.text() == "Code expired — press New code" and not panel.qr.showing
    problem = window.flow.view().problem
    assert "left waiting" in problem.message and "New code" in problem.hint and "station requests" not in problem.hint
    assert state_of(station, request_id) == "authenticated"
    assert panel.steps.item(panel.steps.count() - 1).text() == "✗ The code expired before the phone enrolled"
    assert panel.new_code.isEnabled()
    qtbot.mouseClick(panel.new_code, Qt.MouseButton.LeftButton)  # goes on: the registrar signs in afresh
    sign_in_dialog(qtbot, window, SECRETS["reg"])
    qtbot.waitUntil(lambda: panel.qr.showing, timeout=WAIT)
    assert panel.countdown.text().startswith("Code expires in 0:0")
    qtbot.mouseClick(panel.simulate, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.flow.finished and window.controller.running is None, timeout=WAIT)
    assert window.flow.state.value == "issued" and state_of(station, request_id) == "issued"
