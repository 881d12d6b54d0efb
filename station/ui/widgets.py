"""Small widgets the station's windows share: an error banner (what happened, what to do) and
a large PIN pad. Sizes come from the font, never from pixels, so both read at 200 %."""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, Qt, Signal
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QLineEdit, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from station.errors import sentence


def tr(text: str) -> str:
    return QCoreApplication.translate("station", text)


def scaled_font(widget: QWidget, factor: float, *, bold: bool = False) -> QFont:
    """``widget``'s font ``factor`` times larger (points, so the screen's scaling applies)."""
    font = QFont(widget.font())
    font.setPointSizeF(font.pointSizeF() * factor)
    font.setBold(bold)
    return font


_NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def tries_in_words(tries: int | None) -> str:
    """``2`` -> "Two tries left."; the last try gets a warning of what a wrong PIN does."""
    if tries is None:
        return ""
    if tries == 1:
        return tr("One try left. A wrong PIN now blocks the card: ask the registrar if unsure.")
    count = _NUMBERS[tries] if 0 <= tries < len(_NUMBERS) else str(tries)
    return tr("{count} tries left.").format(count=count.capitalize())


class ErrorBanner(QFrame):
    """What happened and what to do next, in words; hidden while there is nothing to say."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("errorBanner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet("#errorBanner { background: #fdecea; border: 1px solid #b3261e; border-radius: 4px; }"
                           "#errorBanner QLabel { color: #5f1410; }")
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        self.message.setFont(scaled_font(self, 1.0, bold=True))
        self.hint = QLabel(self)
        self.hint.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addWidget(self.hint)
        self.setAccessibleName(tr("Error"))
        self.hide()

    def show_error(self, message: str, hint: str = "") -> None:
        message, hint = sentence(message, capital=True), sentence(hint, capital=True) if hint else ""
        self.message.setText(message)
        self.hint.setText(hint)
        self.hint.setVisible(bool(hint))
        self.setAccessibleDescription(f"{message} {hint}".strip())
        self.show()

    def clear(self) -> None:
        self.message.clear()
        self.hint.clear()
        self.setAccessibleDescription("")
        self.hide()


class PinPad(QWidget):
    """Digits 0-9, Backspace, Clear and OK in large buttons, typing into :attr:`target` (the
    masked entry that has the turn). The digit buttons take no focus: the keyboard types into
    the entry itself, and Tab walks entries and OK, not twelve buttons."""

    ok = Signal()

    def __init__(self, parent: QWidget | None = None, *, scale: float = 2.0):
        super().__init__(parent)
        self.target: QLineEdit | None = None
        font = scaled_font(self, scale, bold=True)
        self._cell = QFontMetrics(font).height()  # every key as large as a digit key
        grid = QGridLayout(self)
        grid.setSpacing(max(4, self.fontMetrics().height() // 2))
        self.digits: dict[str, QPushButton] = {}
        for index, digit in enumerate("1234567890"):
            button = self._button(digit, tr("Digit {digit}").format(digit=digit), font)
            button.clicked.connect(lambda _=False, d=digit: self._type(d))
            self.digits[digit] = button
            row, column = (index // 3, index % 3) if digit != "0" else (3, 1)
            grid.addWidget(button, row, column)
        self.backspace = self._button(tr("Backspace"), tr("Erase the last digit"), scaled_font(self, scale * 0.55, bold=True))
        self.backspace.clicked.connect(self._erase)
        self.clear_button = self._button(tr("Clear"), tr("Erase the whole entry"), scaled_font(self, scale * 0.55, bold=True))
        self.clear_button.clicked.connect(self._clear)
        grid.addWidget(self.clear_button, 3, 0)
        grid.addWidget(self.backspace, 3, 2)
        self.ok_button = self._button(tr("OK"), tr("OK"), scaled_font(self, scale * 0.8, bold=True))
        self.ok_button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.ok_button.clicked.connect(self.ok)
        grid.addWidget(self.ok_button, 4, 0, 1, 3)

    def _button(self, text: str, name: str, font: QFont) -> QPushButton:
        button = QPushButton(text, self)
        button.setFont(font)
        button.setAccessibleName(name)
        button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        button.setAutoDefault(False)
        button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        button.setMinimumSize(self._cell * 3, self._cell * 2)
        return button

    def _type(self, digit: str) -> None:
        if self.target is not None and self.target.isEnabled():
            self.target.insert(digit)
            self.target.setFocus()

    def _erase(self) -> None:
        if self.target is not None and self.target.isEnabled():
            self.target.backspace()
            self.target.setFocus()

    def _clear(self) -> None:
        if self.target is not None and self.target.isEnabled():
            self.target.clear()
            self.target.setFocus()
