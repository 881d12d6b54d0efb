"""The applicant's kiosk: where the applicant types the PIV card PIN and chooses the new
credential's PIN (SP 800-157r1 §3.2: the PIN is the applicant's alone, the registrar never
sees it).

A separate top-level window: full screen on a second screen when the station has one (the
screen that faces the applicant), else a window-modal panel over the registrar's window (the
registrar's screen then shows only "the applicant is entering the PIN"). It shows only the
question meant for the applicant (after a PIN the card refused: that it was not right), the
tries left in words and, for a new PIN, what the PIN policy
(``station/issuance/pin_policy.py``) finds wrong while it is typed; never the registrar's
name, the request or anything typed (the entries are masked and have no "show").

The typed PIN lives only in the entry widgets: :meth:`KioskWindow._ok` hands it to the
prompt (:class:`station.issuance.bridge.Prompt`) and empties every field at once.
"""

from __future__ import annotations

from PySide6.QtCore import QRegularExpression, Qt, Signal
from PySide6.QtGui import QCloseEvent, QGuiApplication, QKeySequence, QRegularExpressionValidator, QScreen, QShortcut
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from station.issuance import pin_policy
from station.issuance.bridge import Prompt, PromptKind
from station.ui.widgets import PinPad, scaled_font, tr, tries_in_words

DECLINED = "the applicant stopped"


def applicant_screen(screens: list[QScreen], registrar: QScreen | None) -> QScreen | None:
    """The screen facing the applicant: another screen than the registrar's when there are
    several (the second one when the registrar's is unknown), else None (no second screen)."""
    if len(screens) < 2:
        return None
    others = [screen for screen in screens if screen is not registrar]
    return others[0] if registrar in screens else screens[1]


def policy_problem(pin: str, *, min_length: int = pin_policy.MIN_LENGTH, max_length: int = pin_policy.MAX_LENGTH) -> str:
    """What is wrong with a new PIN in words (never the PIN), or "" when it may be used."""
    if not min_length <= len(pin) <= max_length:
        return tr("The PIN must be {low} to {high} characters long.").format(low=min_length, high=max_length)
    try:
        pin_policy.check_new_pin(pin, pin)
    except pin_policy.WeakPin as error:
        text = str(error)  # the rule broken, never the PIN
        return text[:1].upper() + text[1:] + "."
    return ""


class KioskWindow(QWidget):
    """See the module docstring. ``parent``: the registrar's window (the panel is modal over
    it when there is one screen); ``min_length``/``max_length``: the PIN lengths the target
    allows, within the policy's 6 to 8."""

    answered = Signal()  # the prompt got its answer (never the value)
    closed = Signal()  # the kiosk went away without an answer: declined, withdrawn, closed

    def __init__(self, parent: QWidget | None = None, *, min_length: int = pin_policy.MIN_LENGTH,
                 max_length: int = pin_policy.MAX_LENGTH):
        super().__init__(parent, Qt.WindowType.Window)
        self.min_length, self.max_length = min_length, max_length
        self.prompt: Prompt | None = None
        self.setWindowTitle(tr("PIN entry"))
        self.setAccessibleName(tr("PIN entry for the applicant"))

        self.question = QLabel(self)
        self.question.setFont(scaled_font(self, 1.8, bold=True))
        self.question.setWordWrap(True)
        self.question.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.tries = QLabel(self)
        self.tries.setFont(scaled_font(self, 1.3))
        self.tries.setWordWrap(True)
        self.tries.setAlignment(Qt.AlignmentFlag.AlignCenter)

        self.pin = self._entry(tr("PIN"))
        self.confirmation = self._entry(tr("The same PIN again"))
        self.pin_label = QLabel(tr("&PIN"), self)
        self.pin_label.setBuddy(self.pin)
        self.confirmation_label = QLabel(tr("&Again"), self)
        self.confirmation_label.setBuddy(self.confirmation)
        for label in (self.pin_label, self.confirmation_label):
            label.setFont(scaled_font(self, 1.3))

        self.policy = QLabel(self)  # what the policy finds wrong, live
        self.policy.setFont(scaled_font(self, 1.2))
        self.policy.setWordWrap(True)
        self.policy.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.policy.setAccessibleName(tr("PIN rules"))

        self.pad = PinPad(self)
        self.pad.ok.connect(self._ok)
        self.ok_button = self.pad.ok_button
        self.ok_button.setDefault(True)
        self.not_now = QPushButton(tr("Not now"), self)
        self.not_now.setFont(scaled_font(self, 1.2))
        self.not_now.setAccessibleName(tr("Not now: stop without entering a PIN"))
        self.not_now.clicked.connect(self._decline)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self._decline)

        entries = QGridLayout()
        for row, (label, entry) in enumerate(((self.pin_label, self.pin), (self.confirmation_label, self.confirmation))):
            entries.addWidget(label, row, 0)
            entries.addWidget(entry, row, 1)
        body = QVBoxLayout()
        body.addWidget(self.question)
        body.addWidget(self.tries)
        body.addLayout(entries)
        body.addWidget(self.policy)
        body.addWidget(self.pad, 1)
        body.addWidget(self.not_now, 0, Qt.AlignmentFlag.AlignRight)
        outer = QHBoxLayout(self)  # centred in a full screen, tight in a panel
        outer.addStretch(1)
        outer.addLayout(body, 3)
        outer.addStretch(1)
        self.setTabOrder(self.pin, self.confirmation)
        self.setTabOrder(self.confirmation, self.ok_button)
        self.setTabOrder(self.ok_button, self.not_now)
        self.pin.textChanged.connect(self._check)
        self.confirmation.textChanged.connect(self._check)
        self.pin.returnPressed.connect(self._return_on_pin)
        self.confirmation.returnPressed.connect(self._ok)
        self.pin.installEventFilter(self)
        self.confirmation.installEventFilter(self)
        self._show_fields()

    def _entry(self, name: str) -> QLineEdit:
        entry = QLineEdit(self)
        entry.setEchoMode(QLineEdit.EchoMode.Password)  # masked; Qt gives a password entry no copy and no undo
        entry.setInputMethodHints(Qt.InputMethodHint.ImhHiddenText | Qt.InputMethodHint.ImhSensitiveData
                                  | Qt.InputMethodHint.ImhNoPredictiveText | Qt.InputMethodHint.ImhNoAutoUppercase)
        entry.setContextMenuPolicy(Qt.ContextMenuPolicy.NoContextMenu)
        entry.setFont(scaled_font(self, 2.0, bold=True))
        entry.setAlignment(Qt.AlignmentFlag.AlignCenter)
        entry.setAccessibleName(name)
        return entry

    def eventFilter(self, watched, event) -> bool:  # the pad types into the entry that has the focus
        if event.type() == event.Type.FocusIn and watched in (self.pin, self.confirmation):
            self.pad.target = watched
        return False

    # --- the prompt ------------------------------------------------------------------------
    def show_for(self, prompt: Prompt) -> None:
        """Ask the applicant ``prompt`` (a PIN or NEW_PIN prompt) and show the kiosk."""
        if prompt.kind not in (PromptKind.PIN, PromptKind.NEW_PIN):
            raise ValueError(f"the kiosk asks for PINs only, not for a {prompt.kind.value} prompt")
        self.prompt = prompt
        self._clear_fields()
        self._show_fields()
        self.place()
        self.pin.setFocus()

    def withdraw(self, prompt: Prompt | None = None) -> None:
        """The engine cancelled the question or it timed out: clear and hide (another prompt
        than the one shown is ignored)."""
        if prompt is not None and prompt is not self.prompt:
            return
        self._finish()
        self.closed.emit()

    def place(self) -> None:
        """Full screen on the applicant's screen when there are two, else a window-modal
        panel centred over the parent."""
        parent = self.parentWidget()
        registrar = parent.window().screen() if parent is not None else None
        screen = applicant_screen(QGuiApplication.screens(), registrar)
        if screen is not None:
            self.setWindowModality(Qt.WindowModality.NonModal)
            self.setScreen(screen)
            self.setGeometry(screen.geometry())
            self.showFullScreen()
        else:
            self.setWindowModality(Qt.WindowModality.WindowModal if parent is not None else Qt.WindowModality.ApplicationModal)
            self.layout().activate()  # the fields just shown or hidden count in the size asked for
            hint = self.sizeHint()
            if parent is not None:  # most of the registrar's window, so the pad is large
                frame = parent.window().frameGeometry()
                self.resize(max(hint.width(), frame.width() * 3 // 5), max(hint.height(), frame.height() * 4 // 5))
                self.move(frame.center() - self.rect().center())
            else:
                self.resize(hint)
            self.showNormal()
        self.raise_()
        self.activateWindow()

    # --- what the applicant does -------------------------------------------------------------
    def _new_pin(self) -> bool:
        return self.prompt is not None and self.prompt.kind is PromptKind.NEW_PIN

    def _show_fields(self) -> None:
        prompt, new = self.prompt, self._new_pin()
        if prompt is None:
            self.question.setText(tr("Please wait for the registrar."))
        elif new:
            self.question.setText(tr("Choose a PIN for your new credential and type it twice."))
        elif prompt.pin_kind == "credential":
            self.question.setText(tr("Type the PIN of your new credential, to test it."))
        elif prompt.again:
            self.question.setText(tr("That PIN was not right. Type the PIN of your PIV card again."))
        else:
            self.question.setText(tr("Type the PIN of your PIV card."))
        self.tries.setText(tries_in_words(prompt.tries_left) if prompt is not None and not new else "")
        self.tries.setVisible(bool(self.tries.text()))
        self.confirmation.setVisible(new)
        self.confirmation_label.setVisible(new)
        self.policy.setVisible(new)
        digits_only = prompt is not None and prompt.kind is PromptKind.PIN and prompt.pin_kind != "credential"
        allowed = "[0-9]" if digits_only else "[0-9A-Za-z]"  # a PIV card PIN is digits (SP 800-73-4 §2.4.3)
        for entry in (self.pin, self.confirmation):
            entry.setValidator(QRegularExpressionValidator(QRegularExpression(f"{allowed}{{0,{self.max_length}}}"), entry))
            entry.setMaxLength(self.max_length)
            entry.setEnabled(prompt is not None)
        self.pad.target = self.pin
        self._check()

    def _check(self) -> None:
        """Live: the policy's words for a new PIN, and OK only when the answer can be sent."""
        pin = self.pin.text()
        if not self._new_pin():
            self.ok_button.setEnabled(self.prompt is not None and self.min_length <= len(pin) <= self.max_length)
            return
        again = self.confirmation.text()
        problem = policy_problem(pin, min_length=self.min_length, max_length=self.max_length)
        differs = bool(again) and again != pin and not (len(again) < len(pin) and pin.startswith(again))
        if not pin:
            message = tr("Use {low} to {high} digits or letters; no repeats, no runs like 1234.").format(
                low=self.min_length, high=self.max_length)
        elif problem:
            message = problem
        elif not again:
            message = tr("Good. Now type the same PIN again.")
        elif differs:
            message = tr("The two PINs differ. Clear the second one and type it again.")
        elif again != pin:
            message = tr("Keep typing the same PIN again.")
        else:
            message = tr("The PINs match. Press OK.")
        good = bool(pin) and not problem and again == pin
        self.policy.setText(message)
        self.policy.setStyleSheet("color: #1b5e20;" if good else "color: #b3261e;" if (problem and pin) or differs else "")
        self.ok_button.setEnabled(good)

    def _return_on_pin(self) -> None:
        if self._new_pin():
            self.confirmation.setFocus()
        else:
            self._ok()

    def _ok(self) -> None:
        if self.prompt is None or not self.ok_button.isEnabled():
            return
        prompt = self.prompt
        if self._new_pin():
            prompt.answer((self.pin.text(), self.confirmation.text()))
        else:
            prompt.answer(self.pin.text())
        self._finish()
        self.answered.emit()

    def _decline(self) -> None:
        if self.prompt is None:
            return
        self.prompt.decline(DECLINED)
        self._finish()
        self.closed.emit()

    def _clear_fields(self) -> None:
        for entry in (self.pin, self.confirmation):
            entry.clear()

    def _finish(self) -> None:
        self.prompt = None
        self._clear_fields()
        self._show_fields()
        self.hide()

    def closeEvent(self, event: QCloseEvent) -> None:  # the window closed by hand: declined
        if self.prompt is not None:
            self.prompt.decline(DECLINED)
            self._finish()
            self.closed.emit()
        super().closeEvent(event)
