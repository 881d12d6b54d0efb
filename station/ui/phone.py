"""The phone's part of the wizard (steps 4-7 onto a phone): the enrollment QR code, its
countdown, "New code", what the phone has done so far, and in the demo "Simulate phone".

:class:`QrCode` paints the code's modules itself, each a square of whole device pixels with
no smoothing, so it is sharp at 100 %, 200 % or any scale. The code holds a one-time secret:
its URI is never shown as text nor given to screen readers, which hear what to do instead.
:class:`PhonePanel` renders the flow's :class:`~station.wizard.flow.PhoneView`; its timer
only formats the time left (no I/O). What "New code" does is the flow's to say.
"""

from __future__ import annotations

import time
from typing import Callable

from PySide6.QtCore import QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import (QGroupBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QSizePolicy,
                               QVBoxLayout, QWidget)

from station.ui.widgets import scaled_font, tr
from station.wizard.flow import IssuanceFlow


def module_size(side: int, count: int) -> int:
    """The size of one of ``count`` modules across ``side`` device pixels, in whole pixels (at least 1)."""
    return max(1, side // count)


class QrCode(QWidget):
    """A QR code's modules (rows of bools, quiet zone included) as black squares on white."""

    MINIMUM = 300  # logical pixels: a phone reads it from arm's length
    PREFERRED = 360

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._rows: tuple[tuple[bool, ...], ...] = ()
        self._picture: tuple[tuple[int, int, float], QImage] | None = None  # (device size and ratio, picture)
        self.setMinimumSize(self.MINIMUM, self.MINIMUM)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setAccessibleName(tr("Enrollment code for the applicant's phone"))
        self.setAccessibleDescription(tr("A QR code for the applicant to scan with the derived PIV app on their phone. "
                                         "It holds a one-time secret and is not read out: ask the applicant to point "
                                         "the phone's camera at the screen."))

    def sizeHint(self) -> QSize:
        return QSize(self.PREFERRED, self.PREFERRED)

    def set_modules(self, rows) -> None:
        rows = tuple(tuple(row) for row in rows)
        if rows != self._rows:
            self._rows, self._picture = rows, None
            self.update()

    @property
    def modules(self) -> tuple[tuple[bool, ...], ...]:
        return self._rows

    @property
    def showing(self) -> bool:
        return bool(self._rows)

    def _device_size(self) -> tuple[int, int, float]:
        """The widget in device pixels (rounded as Qt rounds them) and the device pixel ratio."""
        ratio = self.devicePixelRatioF()
        return int(self.width() * ratio + 0.5), int(self.height() * ratio + 0.5), ratio

    def module_pixels(self) -> int:
        """The size of one module on screen, in device pixels (0: nothing painted)."""
        if not self._rows:
            return 0
        width, height, _ = self._device_size()
        return module_size(min(width, height), len(self._rows))

    def picture(self) -> QImage:
        """The code at the widget's size in device pixels, drawn without any scaling: every
        module a square of whole pixels, at 100 %, 200 % or 150 % alike (made again only when
        the code, the size or the scale changes)."""
        width, height, ratio = self._device_size()
        if self._picture is None or self._picture[0] != (width, height, ratio):
            image = QImage(width, height, QImage.Format.Format_RGB32)
            image.fill(Qt.GlobalColor.white)
            if self._rows:
                count = len(self._rows)
                module = module_size(min(width, height), count)
                left, top = (width - module * count) // 2, (height - module * count) // 2
                squares = []
                for y, row in enumerate(self._rows):
                    x = 0
                    while x < count:
                        if not row[x]:
                            x += 1
                            continue
                        start = x
                        while x < count and row[x]:
                            x += 1
                        squares.append(QRect(left + start * module, top + y * module, (x - start) * module, module))
                painter = QPainter(image)
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(Qt.GlobalColor.black)
                painter.drawRects(squares)
                painter.end()
            image.setDevicePixelRatio(ratio)  # drawn 1:1 onto the screen's pixels
            self._picture = ((width, height, ratio), image)
        return self._picture[1]

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), Qt.GlobalColor.white)
        painter.drawImage(0, 0, self.picture())
        painter.end()


def countdown_words(seconds: int) -> str:
    if seconds <= 0:
        return tr("Code expired — press New code")
    return tr("Code expires in {minutes}:{seconds:02d}").format(minutes=seconds // 60, seconds=seconds % 60)


def step_words(kind: str, detail: str, ok: bool) -> str:
    """What the phone did, in words (the service's own detail after a colon where it helps)."""
    words = {"enrolling": tr("Connected and enrolling: {detail}"),
             "enrolled": tr("Certificate delivered to the phone"),
             "activated": tr("PIN set on the phone"),
             "selftest": tr("Self-test passed") if ok else tr("Self-test failed: {detail}"),
             "refused": tr("Refused: {detail}"),
             "ended": tr("The code expired before the phone enrolled")}.get(kind, "{detail}")
    return words.format(detail=detail)


class PhonePanel(QGroupBox):
    """The code (while the phone has not enrolled), its countdown and New code; the phone's
    steps; Simulate phone in the demo. ``clock``: Unix seconds (tests pass a fake one)."""

    new_code_requested = Signal()
    simulate_requested = Signal()

    def __init__(self, *, demo: bool = False, clock: Callable[[], float] = time.time, parent: QWidget | None = None):
        super().__init__(tr("The applicant's phone"), parent)
        self.clock = clock
        self.flow: IssuanceFlow | None = None
        self.simulating = False  # the demo's phone is at work
        self._shown: tuple = ()  # the phone's steps in the list
        row = QHBoxLayout(self)
        self.qr = QrCode()
        row.addWidget(self.qr)
        column = QVBoxLayout()
        row.addLayout(column, 1)
        self.code_part = QWidget()
        code = QVBoxLayout(self.code_part)
        code.setContentsMargins(0, 0, 0, 0)
        self.instructions = QLabel(tr("The applicant opens the derived PIV app on their phone and scans this code; "
                                      "the phone makes its key, and the applicant sets the PIN on the phone."))
        self.instructions.setWordWrap(True)
        code.addWidget(self.instructions)
        self.countdown = QLabel()
        self.countdown.setAccessibleName(tr("Time left for this code"))
        self.countdown.setFont(scaled_font(self.countdown, 1.3, bold=True))
        code.addWidget(self.countdown)
        buttons = QHBoxLayout()
        self.new_code = QPushButton(tr("&New code"))
        self.new_code.setAccessibleDescription(tr("Show a new code; the code on screen stops working at once"))
        self.new_code.clicked.connect(self.new_code_requested)
        buttons.addWidget(self.new_code)
        self.simulate = QPushButton(tr("&Simulate phone"))
        self.simulate.setAccessibleDescription(tr("Demo: the reference phone client scans this code and enrolls"))
        self.simulate.clicked.connect(self._simulate)
        self.simulate.setVisible(demo)
        buttons.addWidget(self.simulate)
        buttons.addStretch(1)
        code.addLayout(buttons)
        column.addWidget(self.code_part)
        self.note = QLabel()  # a new code refused; the simulated phone's end (demo)
        self.note.setWordWrap(True)
        self.note.setAccessibleName(tr("Note about the phone"))
        self.note.hide()
        column.addWidget(self.note)
        heading = QLabel(tr("What the phone has &done:"))
        column.addWidget(heading)
        self.steps = QListWidget()
        self.steps.setAccessibleName(tr("What the phone has done"))
        self.steps.setWordWrap(True)
        self.steps.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        heading.setBuddy(self.steps)
        column.addWidget(self.steps, 1)
        self.timer = QTimer(self)
        self.timer.setInterval(1000)
        self.timer.timeout.connect(self.tick)

    def render(self, flow: IssuanceFlow) -> None:
        self.flow = flow
        phone = flow.phone
        waiting = not phone.enrolled
        self.code_part.setVisible(waiting)
        self.qr.setVisible(waiting)
        self.new_code.setEnabled(flow.new_code_action() is not None)
        if phone.problem:
            self.show_note(phone.problem)
        if phone.steps != self._shown or not self.steps.count():
            self._shown = phone.steps
            self.steps.clear()
            if not phone.steps:
                self.steps.addItem(tr("Nothing yet: the phone has not scanned the code."))
            for step in phone.steps:
                words = step_words(step.kind, step.detail, step.ok)
                item = QListWidgetItem(("✓ " if step.ok else "✗ ") + words)
                item.setData(Qt.ItemDataRole.AccessibleTextRole, words if step.ok else tr("failed: {words}").format(words=words))
                self.steps.addItem(item)
        self.tick()
        if not waiting:
            self.timer.stop()
        elif not self.timer.isActive():
            self.timer.start()

    def tick(self) -> None:
        """Once a second: the time left, in words; at 0 the code is no longer shown."""
        if self.flow is None:
            return
        left = self.flow.seconds_left(self.clock())
        self.countdown.setText(countdown_words(left))
        self.qr.set_modules(self.flow.phone.modules if left > 0 else ())
        self.simulate.setEnabled(left > 0 and not self.simulating)

    def show_note(self, text: str) -> None:
        self.note.setText(text)
        self.note.setVisible(bool(text))

    def _simulate(self) -> None:
        self.simulating = True
        self.simulate.setEnabled(False)
        self.simulate_requested.emit()
