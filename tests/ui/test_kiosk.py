"""The applicant's kiosk (station/ui/kiosk.py) answering real prompts of the interaction
bridge asked on a worker thread: PINs reach the worker, nothing typed stays in or shows on
any widget, the PIN policy speaks while the new PIN is typed, Not now and a withdrawal close
it, and the registrar's data never appears."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QLabel, QLineEdit, QWidget

from station.cancel import Cancelled
from station.issuance.bridge import Prompt, PromptDeclined, PromptKind
from station.ui.bridge import QtInteractionBridge
from station.ui.kiosk import KioskWindow, applicant_screen, policy_problem
from tests.issuance.test_bridge import Worker

REGISTRAR = "registrar-ada-lovelace"


def shown_texts(root: QWidget, *, entries: bool = True) -> list[str]:
    """Every string a widget of ``root`` shows or tells assistive technology."""
    found = [root.windowTitle(), root.accessibleName(), root.toolTip()]
    for widget in root.findChildren(QWidget):
        found += [widget.accessibleName(), widget.accessibleDescription(), widget.toolTip(), widget.whatsThis()]
        if isinstance(widget, (QLabel, QAbstractButton)):
            found.append(widget.text())
        if isinstance(widget, QLineEdit):
            found.append(widget.placeholderText())
            if entries:
                found.append(widget.text())
    return [text for text in found if text]


@pytest.fixture
def station_window(qtbot):
    """The registrar's window (with the registrar's name on it) and a kiosk over it."""
    registrar = QLabel(f"Signed in: {REGISTRAR}")
    registrar.setWindowTitle(f"Station: {REGISTRAR}")
    qtbot.addWidget(registrar)
    registrar.show()
    kiosk = KioskWindow(registrar)
    return registrar, kiosk


def asked(qtbot, kiosk: KioskWindow, ask) -> tuple[QtInteractionBridge, Worker]:
    """``ask(interaction)`` on a worker thread; the bridge's prompts go to the kiosk."""
    bridge = QtInteractionBridge(cancel=threading.Event())
    bridge.prompted.connect(kiosk.show_for)
    bridge.withdrawn.connect(kiosk.withdraw)
    worker = Worker(lambda: ask(bridge.interaction))
    worker.start()
    qtbot.waitUntil(lambda: kiosk.prompt is not None and kiosk.isVisible(), timeout=5000)
    return bridge, worker


def press_digits(qtbot, kiosk: KioskWindow, digits: str) -> None:
    for digit in digits:
        qtbot.mouseClick(kiosk.pad.digits[digit], Qt.MouseButton.LeftButton)


def test_the_piv_pin_typed_on_the_pad_reaches_the_worker_and_leaves_nothing_behind(qtbot, station_window):
    _, kiosk = station_window
    answered = []
    kiosk.answered.connect(lambda: answered.append(True))
    _, worker = asked(qtbot, kiosk, lambda i: i.request_pin(pin_kind="PIV", tries_left=2))
    assert kiosk.tries.text() == "Two tries left." and kiosk.tries.isVisible()
    assert kiosk.question.text() == "Type the PIN of your PIV card." and not kiosk.confirmation.isVisible()
    press_digits(qtbot, kiosk, "2468")
    assert not kiosk.ok_button.isEnabled()  # a PIV PIN has 6 to 8 digits
    qtbot.keyClicks(kiosk.pin, "13")
    pin = "246813"
    assert kiosk.pin.text() == pin and kiosk.pin.echoMode() is QLineEdit.EchoMode.Password
    assert kiosk.pin.displayText() != pin and not any(pin in text for text in shown_texts(kiosk, entries=False))
    qtbot.mouseClick(kiosk.pad.backspace, Qt.MouseButton.LeftButton)
    assert kiosk.pin.text() == pin[:-1] and not kiosk.ok_button.isEnabled()
    press_digits(qtbot, kiosk, "3")
    qtbot.mouseClick(kiosk.ok_button, Qt.MouseButton.LeftButton)
    worker.join(5)
    assert worker.error is None and worker.result == pin
    assert answered == [True] and not kiosk.isVisible() and kiosk.prompt is None
    assert kiosk.pin.text() == kiosk.confirmation.text() == ""
    kiosk.pin.undo()  # a masked entry keeps no undo history to bring the PIN back
    assert kiosk.pin.text() == "" and not any(pin in text for text in shown_texts(kiosk))


def test_the_last_try_warns_and_letters_cannot_be_typed_into_a_piv_pin(qtbot, station_window):
    _, kiosk = station_window
    bridge, worker = asked(qtbot, kiosk, lambda i: i.request_pin(pin_kind="PIV", tries_left=1))
    assert kiosk.tries.text().startswith("One try left.") and "blocks the card" in kiosk.tries.text()
    qtbot.keyClicks(kiosk.pin, "12ab34")
    assert kiosk.pin.text() == "1234"
    bridge.cancel()
    worker.join(5)
    assert isinstance(worker.error, Cancelled)


def test_the_kiosk_shows_no_registrar_data_and_refuses_a_registrar_question(qtbot, station_window):
    registrar, kiosk = station_window
    _, worker = asked(qtbot, kiosk, lambda i: i.request_pin(pin_kind="PIV", tries_left=3))
    texts = shown_texts(kiosk)
    assert texts and not any(REGISTRAR in text for text in texts)
    assert REGISTRAR in registrar.text()  # the check would see it: it is on the registrar's window
    qtbot.keyClicks(kiosk.pin, "975310")
    qtbot.keyClick(kiosk.pin, Qt.Key.Key_Return)  # keyboard only: Return answers a PIN
    worker.join(5)
    assert worker.result == "975310"
    with pytest.raises(ValueError):
        kiosk.show_for(Prompt(PromptKind.OPERATOR_SECRET, operator=REGISTRAR, purpose="approve request 7"))
    assert kiosk.prompt is None and not kiosk.isVisible()
    assert not any(REGISTRAR in text for text in shown_texts(kiosk))


def test_the_new_pin_policy_speaks_while_typing_and_ok_waits_for_two_equal_valid_entries(qtbot, station_window):
    _, kiosk = station_window
    _, worker = asked(qtbot, kiosk, lambda i: i.request_new_pin())
    assert kiosk.confirmation.isVisible() and not kiosk.tries.isVisible()
    assert "6 to 8" in kiosk.policy.text() and not kiosk.ok_button.isEnabled()
    for typed, words in (("11", "6 to 8 characters long"), ("111111", "repeats a single character"),
                         ("345678", "consecutive digits or letters"), ("123123", "commonly used"),
                         ("k9Pz4m", "Now type the same PIN again")):
        kiosk.pin.clear()
        qtbot.keyClicks(kiosk.pin, typed)
        assert words in kiosk.policy.text(), (typed, kiosk.policy.text())
        assert typed not in kiosk.policy.text() and not kiosk.ok_button.isEnabled()
    qtbot.keyClick(kiosk.pin, Qt.Key.Key_Return)  # Return on the first entry goes to the second
    assert kiosk.pad.target is kiosk.confirmation
    qtbot.keyClicks(kiosk.confirmation, "k9P")
    assert "Keep typing" in kiosk.policy.text() and not kiosk.ok_button.isEnabled()
    qtbot.keyClicks(kiosk.confirmation, "z4n")
    assert "differ" in kiosk.policy.text() and not kiosk.ok_button.isEnabled()
    qtbot.mouseClick(kiosk.pad.clear_button, Qt.MouseButton.LeftButton)  # the pad works on the entry in focus
    assert kiosk.confirmation.text() == "" and kiosk.pin.text() == "k9Pz4m"
    qtbot.keyClicks(kiosk.confirmation, "k9Pz4m")
    assert "match" in kiosk.policy.text() and kiosk.ok_button.isEnabled()
    qtbot.keyClick(kiosk.confirmation, Qt.Key.Key_Return)
    worker.join(5)
    assert worker.error is None and worker.result == ("k9Pz4m", "k9Pz4m")
    assert kiosk.pin.text() == kiosk.confirmation.text() == "" and not kiosk.isVisible()
    assert not any("k9Pz4m" in text for text in shown_texts(kiosk))


def test_a_target_allowing_fewer_characters_narrows_the_policy(qtbot):
    kiosk = KioskWindow(min_length=6, max_length=6)
    qtbot.addWidget(kiosk)
    assert "6 to 6" in policy_problem("k9Pz4mQ", min_length=6, max_length=6)
    assert policy_problem("k9Pz4m") == "" and policy_problem("abcdef").startswith("The PIN is a run")
    _, worker = asked(qtbot, kiosk, lambda i: i.request_new_pin())
    qtbot.keyClicks(kiosk.pin, "k9Pz4mQ1")
    assert kiosk.pin.text() == "k9Pz4m"  # the entry takes no more than the target allows
    kiosk.prompt.decline("test over")
    worker.join(5)


def test_not_now_and_escape_decline_in_words(qtbot, station_window):
    _, kiosk = station_window
    closed = []
    kiosk.closed.connect(lambda: closed.append(True))
    _, worker = asked(qtbot, kiosk, lambda i: i.request_pin(pin_kind="credential", tries_left=None))
    assert "new credential" in kiosk.question.text() and not kiosk.tries.isVisible()
    qtbot.keyClicks(kiosk.pin, "k9Pz")  # a credential PIN may have letters
    assert kiosk.pin.text() == "k9Pz"
    qtbot.mouseClick(kiosk.not_now, Qt.MouseButton.LeftButton)
    worker.join(5)
    assert isinstance(worker.error, PromptDeclined) and "the applicant stopped" in str(worker.error)
    assert closed == [True] and not kiosk.isVisible() and kiosk.pin.text() == ""
    _, worker = asked(qtbot, kiosk, lambda i: i.request_new_pin())
    qtbot.keyClicks(kiosk.pin, "8")
    qtbot.keyClick(kiosk.pin, Qt.Key.Key_Escape)
    worker.join(5)
    assert isinstance(worker.error, PromptDeclined) and closed == [True, True] and kiosk.pin.text() == ""


def test_a_withdrawn_prompt_clears_and_hides_the_kiosk_and_a_late_ok_sends_nothing(qtbot, station_window):
    _, kiosk = station_window
    closed = []
    kiosk.closed.connect(lambda: closed.append(True))
    bridge, worker = asked(qtbot, kiosk, lambda i: i.request_pin(pin_kind="PIV", tries_left=5))
    prompt = kiosk.prompt
    qtbot.keyClicks(kiosk.pin, "864213")
    bridge.cancel()  # the registrar's Cancel: the engine withdraws the question
    worker.join(5)
    assert isinstance(worker.error, Cancelled)
    qtbot.waitUntil(lambda: not kiosk.isVisible(), timeout=5000)
    assert closed == [True] and kiosk.prompt is None and kiosk.pin.text() == ""
    assert not kiosk.ok_button.isEnabled() and not kiosk.pin.isEnabled()
    qtbot.mouseClick(kiosk.ok_button, Qt.MouseButton.LeftButton)
    assert prompt.withdrawn and prompt._value is None
    kiosk.withdraw(Prompt(PromptKind.PIN, pin_kind="PIV"))  # someone else's prompt: nothing happens
    assert closed == [True]


def test_one_screen_gives_a_modal_panel_over_the_registrars_window(qtbot, station_window):
    registrar, kiosk = station_window
    _, worker = asked(qtbot, kiosk, lambda i: i.request_pin(pin_kind="PIV", tries_left=3))
    assert kiosk.isWindow() and kiosk.windowModality() is Qt.WindowModality.WindowModal
    assert kiosk.parentWidget() is registrar and not kiosk.isFullScreen()
    for control in kiosk.findChildren(QAbstractButton) + kiosk.findChildren(QLineEdit):
        assert control.accessibleName(), control
    kiosk.prompt.decline("test over")
    worker.join(5)


def test_the_applicant_screen_is_the_one_the_registrar_is_not_on():
    first, second, third = object(), object(), object()
    assert applicant_screen([first], first) is None
    assert applicant_screen([first, second], first) is second
    assert applicant_screen([first, second], second) is first
    assert applicant_screen([first, second, third], None) is second


TWO_SCREENS = r"""
import sys
from PySide6.QtWidgets import QApplication, QLabel
from station.issuance.bridge import Prompt, PromptKind
from station.ui.kiosk import KioskWindow
app = QApplication(sys.argv)
registrar = QLabel("registrar")
registrar.show()
kiosk = KioskWindow(registrar)
kiosk.show_for(Prompt(PromptKind.PIN, pin_kind="PIV", tries_left=2))
app.processEvents()
print(registrar.screen().name(), kiosk.screen().name(), kiosk.isFullScreen(), kiosk.windowModality().name,
      kiosk.geometry() == kiosk.screen().geometry())
"""


def test_two_screens_give_the_applicant_the_other_one_full_screen(tmp_path):
    """Qt's offscreen platform with two screens (its configfile), in a fresh interpreter:
    the test's own QApplication has one screen."""
    config = tmp_path / "screens.json"
    config.write_text(json.dumps({"screens": [
        {"name": "registrar", "x": 0, "y": 0, "width": 1280, "height": 800, "logicalDpi": 96},
        {"name": "applicant", "x": 1280, "y": 0, "width": 1024, "height": 768, "logicalDpi": 96}]}))
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={config}", "PYTHONPATH": root}
    result = subprocess.run([sys.executable, "-c", TWO_SCREENS], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["registrar", "applicant", "True", "NonModal", "True"]
