"""The sign-in screen: an operator signs in with their own PIV card (PKI-AUTH under the
operator trust profile) or, where the configuration allows it, their password.

The sign-in runs on the device worker (:func:`sign_in_job` through ``ctx.call``): the argon2id
check and the card never block the GUI thread. Every refusal is audited by the service and
shown here in its own words with its hint. The password or PIN field is emptied as soon as its
value is handed on; the value travels in a one-item list that the worker empties when it takes
it, so no widget or job keeps it.

The screen shows before the station is open (:mod:`station.ui.app`): it is built from the
home's configuration and imports nothing of the service layer; a sign-in submitted while the
station opens runs on the worker after the opening.
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, Signal
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
                               QProgressBar, QPushButton, QRadioButton, QVBoxLayout, QWidget)

from station.signin_policy import passwords_allowed


def tr(text: str) -> str:
    return QCoreApplication.translate("station", text)


def sign_in_job(station, identity: str, secret: list[str], reader: str | None):
    """On the worker: ``identity`` signs in with ``secret[0]`` (their password, or their card's
    PIN with ``reader``); the list is emptied when the secret is taken. The main window fits
    every role the operator holds, so the sign-in is checked for one role they hold (an
    unknown operator is refused, and audited, as such)."""
    from station.service.operators import active_operator
    from station.service.session import operator_sign_in
    from station.terms import Role

    login = active_operator(station, identity)
    held = [role for role in Role if login is not None and role.value in login.roles]

    def take() -> str:
        value = secret[0] if secret else ""
        secret.clear()
        return value

    try:
        return operator_sign_in(station, identity, take, held[0] if held else Role.REGISTRAR, reader=reader)
    finally:
        secret.clear()  # also when the secret was never asked for


def list_readers(station) -> list[str]:
    from station.devices import pcsc

    return pcsc.list_readers()


class SignInScreen(QWidget):
    """``signed_in(SignedIn)`` on success; the caller calls ``ctx.set_operator``."""

    signed_in = Signal(object)

    def __init__(self, ctx, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.passwords = passwords_allowed(ctx.config)
        self.setWindowTitle(tr("Sign in — Derived PIV Issuance Station"))
        self.setAccessibleName(tr("Sign in"))

        # a heading in rich text: larger and bold with the font's size, without making QFont's
        # Python enums on the GUI thread before the first paint (~5 ms)
        title = QLabel("<h2>%s</h2>" % tr("Sign in to the station").replace("&", "&amp;").replace("<", "&lt;"))
        title.setAccessibleName(tr("Sign in to the station"))
        self.notice = QLabel()  # why the screen shows (locked, signed out)
        self.notice.setWordWrap(True)
        self.notice.setAccessibleName(tr("Notice"))
        self.notice.hide()

        self.identity = QLineEdit()
        self.identity.setAccessibleName(tr("Operator identity"))
        self.identity.setPlaceholderText(tr("your operator identity"))

        self.with_password = QRadioButton(tr("With my &password"))
        self.with_password.setAccessibleName(tr("Sign in with my password"))
        self.with_card = QRadioButton(tr("With my PIV &card"))
        self.with_card.setAccessibleName(tr("Sign in with my PIV card"))
        methods = QButtonGroup(self)
        methods.addButton(self.with_password)
        methods.addButton(self.with_card)
        method_row = QHBoxLayout()
        method_row.addWidget(self.with_password)
        method_row.addWidget(self.with_card)
        method_row.addStretch()

        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setAccessibleName(tr("Password"))
        self.password_label = QLabel(tr("Pass&word:"))
        self.password_label.setBuddy(self.password)

        self.reader = QComboBox()
        self.reader.setAccessibleName(tr("Card reader"))
        self.reader.setEditable(False)
        self.reader_label = QLabel(tr("&Reader:"))
        self.reader_label.setBuddy(self.reader)
        self.refresh_readers = QPushButton(tr("Find readers"))
        self.refresh_readers.setAccessibleName(tr("Find card readers"))
        self.refresh_readers.clicked.connect(self.load_readers)
        reader_row = QHBoxLayout()
        reader_row.addWidget(self.reader, 1)
        reader_row.addWidget(self.refresh_readers)
        self.reader_box = QWidget()
        self.reader_box.setLayout(reader_row)
        reader_row.setContentsMargins(0, 0, 0, 0)
        self.pin = QLineEdit()
        self.pin.setEchoMode(QLineEdit.EchoMode.Password)
        self.pin.setAccessibleName(tr("Card PIN"))
        self.pin_label = QLabel(tr("P&IN:"))
        self.pin_label.setBuddy(self.pin)

        form = QFormLayout()
        identity_label = QLabel(tr("&Operator:"))
        identity_label.setBuddy(self.identity)
        form.addRow(identity_label, self.identity)
        form.addRow(tr("Sign in:"), method_row)
        form.addRow(self.password_label, self.password)
        form.addRow(self.reader_label, self.reader_box)
        form.addRow(self.pin_label, self.pin)
        self.form = form

        self.error = QLabel()
        self.error.setWordWrap(True)  # selectable once shown (_show_error): see _selectable
        self.error.setStyleSheet("color: palette(highlighted-text); background: #b00020; padding: 6px;")
        self.error.setAccessibleName(tr("Sign-in refused"))
        self.error.hide()
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setTextVisible(False)
        self.busy.setAccessibleName(tr("Signing in"))
        self.busy.hide()

        self.button = QPushButton(tr("&Sign in"))
        self.button.setAccessibleName(tr("Sign in"))
        self.button.setDefault(True)
        self.button.setAutoDefault(True)
        self.button.clicked.connect(self.submit)
        buttons = QHBoxLayout()
        buttons.addStretch()
        buttons.addWidget(self.button)

        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(self.notice)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.busy)
        self.status = QVBoxLayout()  # what the application says meanwhile (the station opening)
        layout.addLayout(self.status)
        layout.addLayout(buttons)
        if ctx.demo is not None and getattr(ctx.demo, "operators", None):
            layout.addWidget(self._demo_box(ctx.demo.operators))
        layout.addStretch()
        self.setMinimumWidth(self.fontMetrics().averageCharWidth() * 60)  # scales with the font

        for field in (self.identity, self.password, self.pin):
            field.returnPressed.connect(self.submit)
        self.with_password.toggled.connect(self._method_changed)
        self.with_card.toggled.connect(self._method_changed)
        if self.passwords:
            self.with_password.setChecked(True)
        else:
            self.with_password.setEnabled(False)
            self.with_password.setToolTip(tr("The station's configuration does not allow passwords"))
            self.with_card.setChecked(True)
        self._method_changed()
        self.setTabOrder(self.identity, self.with_password)
        self.setTabOrder(self.with_password, self.with_card)
        self.setTabOrder(self.with_card, self.password)
        self.setTabOrder(self.password, self.reader)
        self.setTabOrder(self.reader, self.refresh_readers)
        self.setTabOrder(self.refresh_readers, self.pin)
        self.setTabOrder(self.pin, self.button)
        self.identity.setFocus()
        self._job: int | None = None

    @staticmethod
    def _selectable(label: QLabel) -> None:
        """The label's text can be selected with the mouse (copied into a report). ``Qt``, the
        namespace, is looked up here, not at import: its first use makes ~90 Python enums
        (~30 ms) that the first paint of the screen does not need."""
        from PySide6.QtCore import Qt

        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

    def _demo_box(self, operators: dict[str, str]) -> QGroupBox:
        box = QGroupBox(tr("Demo operators (shown in demo mode only)"))
        box.setAccessibleName(tr("Demo operators"))
        grid = QFormLayout(box)
        for identity, password in operators.items():
            value = QLabel(password)
            self._selectable(value)
            value.setAccessibleName(tr("Password of %s") % identity)
            grid.addRow(QLabel(identity), value)
        return box

    def _method_changed(self, *_):
        card = self.with_card.isChecked()
        for widget in (self.password_label, self.password):
            widget.setVisible(not card)
        for widget in (self.reader_label, self.reader_box, self.pin_label, self.pin):
            widget.setVisible(card)
        if card and self.reader.count() == 0:
            self.load_readers()
        self._fit()

    def add_status(self, widget: QWidget) -> None:
        """Show ``widget`` above the Sign in button (it goes when it is deleted), aligned with
        the form."""
        if widget.layout() is not None:
            widget.layout().setContentsMargins(0, 0, 0, 0)
        self.status.addWidget(widget)
        self._fit()

    def load_readers(self) -> None:
        """The readers PC/SC lists (on the worker); the configured operator reader first."""
        from station.ui.registry import guarded

        self.refresh_readers.setEnabled(False)
        self.ctx.call("list readers", list_readers, on_done=guarded(self, self._readers),
                      on_error=guarded(self, self._readers_failed))

    def _readers(self, names: list[str]) -> None:
        self.refresh_readers.setEnabled(True)
        preferred = self.ctx.settings.operator_reader
        if preferred and preferred not in names:
            names = [preferred, *names]
        self.reader.clear()
        self.reader.addItems(names)
        if preferred:
            self.reader.setCurrentText(preferred)
        if not names:
            self._show_error(tr("No card reader is connected."), tr("Connect a reader, then press Find readers."))

    def _readers_failed(self, error: BaseException) -> None:
        from station.ui.app import describe

        self.refresh_readers.setEnabled(True)
        self._show_error(*describe(error))

    def reset(self, notice: str = "") -> None:
        """Ready for the next operator: secrets and errors cleared, ``notice`` shown."""
        self.password.clear()
        self.pin.clear()
        self.error.hide()
        self.notice.setText(notice)
        self.notice.setVisible(bool(notice))
        self._set_busy(False)
        self.identity.setFocus()

    def _show_error(self, what: str, hint: str) -> None:
        self._selectable(self.error)
        self.error.setText(f"{what}\n{hint}" if hint else what)
        self.error.show()
        self._fit()

    def _fit(self) -> None:
        """Grow the window to what it now shows (a wrapped error, the card fields)."""
        if self.isWindow():
            self.layout().activate()
            self.resize(self.width(), max(self.height(), self.layout().totalHeightForWidth(self.width())))

    def _set_busy(self, busy: bool) -> None:
        self.busy.setVisible(busy)
        for widget in (self.identity, self.password, self.pin, self.button, self.with_password, self.with_card,
                       self.reader, self.refresh_readers):
            widget.setEnabled(not busy)
        if not busy and not self.passwords:
            self.with_password.setEnabled(False)

    def submit(self) -> None:
        from station.ui.registry import guarded

        if self._job is not None:
            return
        identity = self.identity.text().strip()
        card = self.with_card.isChecked()
        field = self.pin if card else self.password
        if not identity:
            self._show_error(tr("No operator identity was typed."), tr("Type your operator identity."))
            self.identity.setFocus()
            return
        reader = self.reader.currentText() if card else None
        if card and not reader:
            self._show_error(tr("No card reader is chosen."), tr("Connect a reader, then press Find readers."))
            return
        secret = [field.text()]
        field.clear()  # handed on: the widget keeps nothing
        self.error.hide()
        self._set_busy(True)
        self._job = self.ctx.call("sign in", sign_in_job, identity, secret, reader,
                                  on_done=guarded(self, self._done), on_error=guarded(self, self._refused))
        del secret

    def _done(self, signed) -> None:
        self._job = None
        self._set_busy(False)
        self.notice.hide()
        self.signed_in.emit(signed)

    def _refused(self, error: BaseException) -> None:
        from station.ui.app import describe

        self._job = None
        self._set_busy(False)
        self._show_error(*describe(error))
        (self.pin if self.with_card.isChecked() else self.password).setFocus()
