"""The supervisor's approval lock (station/ui/approval.py): it covers the registrar's window,
shows the request, hands the password only to the engine's OPERATOR_SECRET prompt (asked on a
worker thread through the real bridge) and forgets it, shows refusals in words, and gives the
registrar's window back on Cancel."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QAbstractButton, QLineEdit, QMainWindow, QPushButton

from station.issuance.bridge import Prompt, PromptDeclined, PromptKind
from station.ui.approval import ApprovalLock
from station.ui.bridge import QtInteractionBridge
from station.wizard.facts import ApprovalFacts
from tests.issuance.test_bridge import Worker
from tests.ui.test_kiosk import shown_texts

PASSWORD = "supervisor passphrase 42"


def jpeg() -> bytes:
    image = QImage(60, 80, QImage.Format.Format_RGB32)
    image.fill(QColor("#8fb3d9"))
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    assert image.save(buffer, "JPEG")
    return bytes(data)


FACTS = ApprovalFacts(request_id=7, applicant="GOLDEN, JOHN Q", registrar="reg-ada", aal="AAL3",
                      target="SoftHSM token (serial 1a2b3c)", photo=None)


@pytest.fixture
def registrar_window(qtbot):
    window = QMainWindow()
    window.menuBar().addMenu("&File")
    work = QPushButton("Next")
    window.setCentralWidget(work)
    window.resize(900, 700)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window, work, ApprovalLock(work)


def type_in(qtbot, lock: ApprovalLock, identity: str, password: str, reason: str = "") -> None:
    qtbot.keyClicks(lock.identity, identity)
    qtbot.keyClicks(lock.password, password)
    qtbot.keyClicks(lock.reason, reason)


def test_the_lock_covers_the_registrars_window_and_shows_the_request(qtbot, registrar_window):
    window, work, lock = registrar_window
    lock.show_request(ApprovalFacts(**{**FACTS.__dict__, "photo": jpeg()}))
    assert lock.isVisible() and lock.parentWidget() is window and lock.geometry() == window.rect()
    assert not work.isEnabled() and not window.menuBar().isEnabled()  # nothing of the session reachable
    texts = shown_texts(lock)
    for fact in ("7", "GOLDEN, JOHN Q", "reg-ada", "AAL3", "SoftHSM token (serial 1a2b3c)"):
        assert fact in texts, fact
    assert not lock.photo.pixmap().isNull() and lock.photo.text() == ""
    window.resize(1000, 760)
    qtbot.waitUntil(lambda: lock.geometry() == window.rect())
    for control in lock.findChildren(QAbstractButton) + lock.findChildren(QLineEdit):
        assert control.accessibleName(), control
    assert lock.password.echoMode() is QLineEdit.EchoMode.Password


def test_a_photo_that_cannot_be_decoded_says_no_photo(qtbot, registrar_window):
    _, _, lock = registrar_window
    lock.show_request(ApprovalFacts(**{**FACTS.__dict__, "photo": b"\x00\x00\x00\x0cjP  \r\n\x87\n broken"}))
    assert lock.photo.pixmap().isNull() and lock.photo.text().startswith("No photo")
    lock.show_request(FACTS)
    assert lock.photo.text() == "No photo"


def test_approve_hands_the_password_only_to_the_engines_question_then_forgets_it(qtbot, registrar_window):
    window, work, lock = registrar_window
    decisions = []
    lock.decided.connect(lambda *decision: decisions.append(decision))
    lock.show_request(FACTS)
    assert not lock.approve.isEnabled() and not lock.deny.isEnabled()
    type_in(qtbot, lock, "sup-grace", PASSWORD)
    assert lock.approve.isEnabled() and not lock.deny.isEnabled()  # no reason: no denial
    qtbot.mouseClick(lock.approve, Qt.MouseButton.LeftButton)
    assert decisions == [("sup-grace", True, "")]
    assert not any(PASSWORD in str(value) for value in decisions[0])
    assert not lock.approve.isEnabled() and "Checking" in lock.status.text()  # no second click
    bridge = QtInteractionBridge(cancel=threading.Event())
    bridge.prompted.connect(lock.answer_secret)  # the engine signs the supervisor in
    worker = Worker(lambda: bridge.interaction.operator_secret("sup-grace", "approve request 7"))
    worker.start()
    qtbot.waitUntil(lambda: not worker.is_alive(), timeout=5000)  # the prompt comes through the event loop
    assert worker.error is None and worker.result == PASSWORD
    assert lock.password.text() == ""  # emptied once handed over
    lock.password.undo()
    assert lock.password.text() == "" and not any(PASSWORD in text for text in shown_texts(lock))
    lock.unlock()
    assert not lock.isVisible() and work.isEnabled() and window.menuBar().isEnabled()
    assert lock.identity.text() == ""


def test_deny_needs_a_reason_and_carries_it(qtbot, registrar_window):
    _, _, lock = registrar_window
    decisions = []
    lock.decided.connect(lambda *decision: decisions.append(decision))
    lock.show_request(FACTS, identity="sup-grace")
    assert lock.identity.text() == "sup-grace" and lock.password.hasFocus()
    qtbot.keyClicks(lock.password, PASSWORD)
    qtbot.mouseClick(lock.deny, Qt.MouseButton.LeftButton)
    assert decisions == [] and not lock.deny.isEnabled()
    qtbot.keyClicks(lock.reason, "  ")
    assert not lock.deny.isEnabled()  # blanks are no reason
    qtbot.keyClicks(lock.reason, "the photo does not match")
    qtbot.mouseClick(lock.deny, Qt.MouseButton.LeftButton)
    assert decisions == [("sup-grace", False, "the photo does not match")]
    lock.clear()
    assert lock.password.text() == lock.reason.text() == lock.status.text() == ""


def test_a_refusal_is_shown_in_words_and_the_supervisor_tries_again_or_cancels(qtbot, registrar_window):
    window, work, lock = registrar_window
    dismissed = []
    lock.dismissed.connect(lambda: dismissed.append(True))
    lock.show_request(FACTS)
    type_in(qtbot, lock, "reg-ada", PASSWORD)
    qtbot.mouseClick(lock.approve, Qt.MouseButton.LeftButton)
    lock.show_refusal("the registrar of a request cannot approve it", "another supervisor signs in to approve")
    assert lock.banner.isVisible()
    assert lock.banner.message.text() == "The registrar of a request cannot approve it."
    assert lock.banner.hint.text() == "Another supervisor signs in to approve."
    assert lock.password.text() == "" and lock.password.hasFocus() and lock.status.text() == ""
    assert lock.identity.isEnabled() and not lock.approve.isEnabled()  # a password again, then Approve
    qtbot.keyClicks(lock.identity, "-not")
    qtbot.keyClicks(lock.password, PASSWORD)
    assert lock.approve.isEnabled()
    qtbot.keyClick(lock.reason, Qt.Key.Key_Escape)  # keyboard: Escape is Cancel
    assert dismissed == [True] and not lock.isVisible() and lock.password.text() == ""
    assert work.isEnabled() and window.menuBar().isEnabled()


def test_the_password_goes_to_no_other_operator_and_no_other_question(qtbot, registrar_window):
    _, _, lock = registrar_window
    lock.show_request(FACTS)
    type_in(qtbot, lock, "sup-grace", PASSWORD)
    qtbot.mouseClick(lock.approve, Qt.MouseButton.LeftButton)
    other = Prompt(PromptKind.OPERATOR_SECRET, operator="sup-mallory", purpose="approve request 7")
    assert lock.answer_secret(other) is False and other.status == "open" and lock.password.text() == ""
    with pytest.raises(ValueError):
        lock.answer_secret(Prompt(PromptKind.PIN, pin_kind="PIV"))
    late = Prompt(PromptKind.OPERATOR_SECRET, operator="sup-grace", purpose="approve request 7")
    assert lock.answer_secret(late) is False and late.status == "open"  # nothing held any more


def test_cancel_button_declines_nothing_but_gives_the_window_back(qtbot, registrar_window):
    window, work, lock = registrar_window
    bridge = QtInteractionBridge(cancel=threading.Event())
    dismissed = []
    lock.dismissed.connect(lambda: dismissed.append(True))
    lock.show_request(FACTS)
    worker = Worker(lambda: bridge.interaction.operator_secret("sup-grace", "approve request 7"))
    prompts = []
    bridge.prompted.connect(prompts.append)
    worker.start()
    qtbot.waitUntil(lambda: bool(prompts))
    qtbot.mouseClick(lock.cancel, Qt.MouseButton.LeftButton)
    assert dismissed == [True] and work.isEnabled() and not lock.isVisible()
    assert lock.answer_secret(prompts[0]) is False  # nothing typed, nothing handed over
    prompts[0].decline("the supervisor cancelled")
    worker.join(5)
    assert isinstance(worker.error, PromptDeclined)
