"""The supervisor's approval lock screen (SP 800-157r1 §3.2: issuance is approved by someone
other than the registrar; the engine's separation-of-duties rules decide who may).

**A full-window overlay child, not a dialog.** :class:`ApprovalLock` is an opaque child
widget laid over the registrar's whole window (menu bar included) and kept at its size; while
it is up, the window's other children are disabled, so nothing of the registrar's session can
be read, clicked, tabbed to or reached by its shortcuts, yet the registrar's session stays as
it was underneath and resumes when the lock goes. An application-modal dialog would also
block the applicant's kiosk and other station windows, and a frameless top-level window
cannot be laid exactly over another on every window system (Wayland places windows itself).

The supervisor sees the request (:class:`station.wizard.facts.ApprovalFacts`: applicant,
photo, target, AAL, registrar, request id), types their identity and password (masked) and
approves or denies (a reason is required to deny). :attr:`decided` carries the identity, the
choice and the reason, never the password: that stays in its masked entry until the engine
asks for it with an OPERATOR_SECRET prompt (:meth:`ApprovalLock.answer_secret`, which hands it
over and empties the entry) or until :meth:`ApprovalLock.clear`. A refusal (the engine's
words, e.g. "the registrar of a request cannot approve it") is shown with what to do, and the
supervisor may try again or Cancel (:attr:`dismissed`).
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeySequence, QPalette, QPixmap, QShortcut
from PySide6.QtWidgets import (QFormLayout, QFrame, QHBoxLayout, QLabel, QLineEdit, QPushButton, QSizePolicy,
                               QVBoxLayout, QWidget)

from station.issuance.bridge import Prompt, PromptKind
from station.ui.widgets import ErrorBanner, scaled_font, tr
from station.wizard.facts import ApprovalFacts


class ApprovalLock(QWidget):
    """See the module docstring. ``parent``: any widget of the registrar's window; the lock
    covers that window. Show it with :meth:`show_request`; take it away with :meth:`unlock`."""

    decided = Signal(str, bool, str)  # the supervisor's identity, approve?, the reason
    dismissed = Signal()  # Cancel: no decision, the registrar's session resumes

    def __init__(self, parent: QWidget):
        host = parent.window()
        super().__init__(host)
        self.host = host
        self.facts: ApprovalFacts | None = None
        self._disabled: list[QWidget] = []
        self.setObjectName("approvalLock")
        self.setAutoFillBackground(True)  # opaque: the registrar's session is not readable beneath
        self.setAccessibleName(tr("Supervisor approval: the registrar's session is locked"))

        title = QLabel(tr("Supervisor approval"), self)
        title.setFont(scaled_font(self, 1.6, bold=True))
        title.setAccessibleName(tr("Supervisor approval"))
        note = QLabel(tr("The registrar's session is locked until a supervisor approves or denies this request."), self)
        note.setWordWrap(True)

        self.photo = QLabel(self)
        self.photo.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.photo.setFrameShape(QFrame.Shape.Box)
        line = self.fontMetrics().height()
        self.photo.setFixedSize(line * 8, line * 10)  # a portrait's frame, in lines of text
        self.request = QLabel(self)
        self.applicant = QLabel(self)
        self.applicant.setFont(scaled_font(self, 1.3, bold=True))
        self.target = QLabel(self)
        self.aal = QLabel(self)
        self.registrar = QLabel(self)
        facts = QFormLayout()
        for label, value in ((tr("Request"), self.request), (tr("Applicant"), self.applicant),
                             (tr("Target"), self.target), (tr("Assurance level"), self.aal),
                             (tr("Registrar"), self.registrar)):
            value.setWordWrap(True)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByKeyboard
                                          | Qt.TextInteractionFlag.TextSelectableByMouse)
            value.setAccessibleName(label)
            facts.addRow(label, value)

        self.banner = ErrorBanner(self)
        self.identity = QLineEdit(self)
        self.identity.setAccessibleName(tr("Supervisor's identity"))
        self.password = QLineEdit(self)
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setInputMethodHints(Qt.InputMethodHint.ImhHiddenText | Qt.InputMethodHint.ImhSensitiveData
                                          | Qt.InputMethodHint.ImhNoPredictiveText)
        self.password.setContextMenuPolicy(Qt.ContextMenuPolicy.NoContextMenu)
        self.password.setAccessibleName(tr("Supervisor's password"))
        self.reason = QLineEdit(self)
        self.reason.setAccessibleName(tr("Reason (required to deny)"))
        self.reason.setPlaceholderText(tr("Why (required to deny)"))
        form = QFormLayout()
        for text, field in ((tr("&Supervisor"), self.identity), (tr("&Password"), self.password),
                            (tr("&Reason"), self.reason)):
            label = QLabel(text, self)
            label.setBuddy(field)
            form.addRow(label, field)

        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.approve = QPushButton(tr("Approve"), self)
        self.approve.setAccessibleName(tr("Approve the request"))
        self.deny = QPushButton(tr("Deny"), self)
        self.deny.setAccessibleName(tr("Deny the request"))
        self.cancel = QPushButton(tr("Cancel"), self)
        self.cancel.setAccessibleName(tr("Cancel: no decision now"))
        for button in (self.approve, self.deny, self.cancel):
            button.setAutoDefault(False)  # Return never approves by accident
        self.approve.clicked.connect(lambda: self._decide(True))
        self.deny.clicked.connect(lambda: self._decide(False))
        self.cancel.clicked.connect(self._dismiss)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self._dismiss, context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
        for field in (self.identity, self.password, self.reason):
            field.textChanged.connect(self._check)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.approve, self.deny, self.cancel):
            buttons.addWidget(button)
        request = QHBoxLayout()
        request.addWidget(self.photo, 0, Qt.AlignmentFlag.AlignTop)
        request.addLayout(facts, 1)
        card = QFrame(self)
        card.setObjectName("approvalCard")
        card.setFrameShape(QFrame.Shape.StyledPanel)
        card.setAutoFillBackground(True)
        light, shade = QPalette(self.palette()), QPalette(self.palette())
        window = self.palette().color(QPalette.ColorRole.Window)
        light.setColor(QPalette.ColorRole.Window, window)
        shade.setColor(QPalette.ColorRole.Window, window.darker(125))
        self.setPalette(shade)  # the lock a shade darker than the card on it
        card.setPalette(light)
        card.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        inner = QVBoxLayout(card)
        inner.addWidget(title)
        inner.addWidget(note)
        inner.addLayout(request)
        inner.addWidget(self.banner)
        inner.addLayout(form)
        inner.addWidget(self.status)
        inner.addLayout(buttons)
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        middle = QHBoxLayout()
        middle.addStretch(1)
        middle.addWidget(card, 4)
        middle.addStretch(1)
        outer.addLayout(middle)
        outer.addStretch(2)
        self.setTabOrder(self.identity, self.password)
        self.setTabOrder(self.password, self.reason)
        self.setTabOrder(self.reason, self.approve)
        self.setTabOrder(self.approve, self.deny)
        self.setTabOrder(self.deny, self.cancel)
        host.installEventFilter(self)
        self.hide()
        self._check()

    # --- showing a request ---------------------------------------------------------------------
    def show_request(self, facts: ApprovalFacts, identity: str = "") -> None:
        """Lock the registrar's window and ask for a decision on ``facts``."""
        self.facts = facts
        self.request.setText(str(facts.request_id))
        self.applicant.setText(facts.applicant)
        self.target.setText(facts.target)
        self.aal.setText(facts.aal)
        self.registrar.setText(facts.registrar)
        self._show_photo(facts.photo)
        self.clear()
        self.identity.setText(identity)
        self._lock()
        (self.password if identity else self.identity).setFocus()

    def _show_photo(self, photo: bytes | None) -> None:
        pixmap = QPixmap()
        if photo and pixmap.loadFromData(photo):
            self.photo.setPixmap(pixmap.scaled(self.photo.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                               Qt.TransformationMode.SmoothTransformation))
            self.photo.setAccessibleName(tr("The card's facial image"))
        else:  # none on the card, or a JPEG 2000 this Qt cannot decode
            self.photo.setPixmap(QPixmap())
            self.photo.setText(tr("No photo") if not photo else tr("No photo: the card's image cannot be shown here"))
            self.photo.setWordWrap(True)
            self.photo.setAccessibleName(self.photo.text())

    # --- the decision ----------------------------------------------------------------------------
    def _check(self) -> None:
        busy = bool(self.status.text())
        ready = bool(self.identity.text().strip() and self.password.text()) and not busy
        self.approve.setEnabled(ready)
        self.deny.setEnabled(ready and bool(self.reason.text().strip()))
        for field in (self.identity, self.password, self.reason):
            field.setEnabled(not busy)

    def _decide(self, approve: bool) -> None:
        if not (self.approve if approve else self.deny).isEnabled():
            return
        self.banner.clear()
        self.status.setText(tr("Checking the supervisor's sign-in…"))
        self._check()
        self.decided.emit(self.identity.text().strip(), approve, self.reason.text().strip())

    def answer_secret(self, prompt: Prompt) -> bool:
        """Answer the engine's OPERATOR_SECRET ``prompt`` with the password typed, then empty
        the entry. False (nothing handed over) when no password is held or the prompt asks
        for another operator than the one who typed it."""
        if prompt.kind is not PromptKind.OPERATOR_SECRET:
            raise ValueError(f"the approval lock answers an operator's password, not a {prompt.kind.value} prompt")
        if not self.password.text() or (prompt.operator is not None and prompt.operator != self.identity.text().strip()):
            self.password.clear()
            return False
        answered = prompt.answer(self.password.text())
        self.password.clear()
        return answered

    def show_refusal(self, message: str, hint: str = "") -> None:
        """The engine refused (or the sign-in failed): say so, and let the supervisor try
        again or Cancel."""
        self.password.clear()
        self.status.clear()
        self.banner.show_error(message, hint or tr("Check the request, then try again or press Cancel."))
        self._check()
        self.password.setFocus()

    def clear(self) -> None:
        """Empty every field (the password first) and any message."""
        self.password.clear()
        self.identity.clear()
        self.reason.clear()
        self.status.clear()
        self.banner.clear()
        self._check()

    def unlock(self) -> None:
        """The decision is made (or abandoned): clear, and give the registrar's window back."""
        self.clear()
        self.facts = None
        self.hide()
        for widget in self._disabled:
            widget.setEnabled(True)
        self._disabled = []

    def _dismiss(self) -> None:
        if self.isVisible():
            self.unlock()
            self.dismissed.emit()

    # --- covering the registrar's window -----------------------------------------------------------
    def _lock(self) -> None:
        if not self._disabled:
            self._disabled = [child for child in self.host.findChildren(QWidget, options=Qt.FindChildOption.FindDirectChildrenOnly)
                              if child is not self and not child.isWindow() and child.isEnabled()]
            for widget in self._disabled:
                widget.setEnabled(False)
        self.setGeometry(self.host.rect())
        self.show()
        self.raise_()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.host and event.type() == QEvent.Type.Resize:
            self.setGeometry(self.host.rect())
        return False
