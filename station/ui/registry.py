"""What administrators and auditors look at: the credential registry (search, show, revoke
with a reason) and the audit trail (recent events, verify the chain).

Every load and every change runs on the device worker through ``ctx.call``; the tables are
filled when the result arrives. The registry is the service's
:func:`station.service.revocation.list_credentials`: the status each credential has in the
audit trail. Only administrators revoke (the button is absent for auditors); the revocation is
the service's :func:`~station.service.revocation.revoke`, recorded as the signed-in operator.
"""

from __future__ import annotations

import io
import json

import shiboken6

from PySide6.QtCore import QCoreApplication, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout,
                               QHeaderView, QLabel, QLineEdit, QPlainTextEdit, QProgressBar, QPushButton, QTableView,
                               QVBoxLayout, QWidget)

from station.terms import Role



def device_words(identity: str | None) -> str:
    """A recorded device identity (``pkcs11:token=…;manufacturer=…``) in words: label, model, serial."""
    from station.issuance.targets.base import DeviceIdentity

    return DeviceIdentity.parse(identity).words() if identity else ""

def tr(text: str) -> str:
    return QCoreApplication.translate("station", text)


def busy_bar(name: str) -> QProgressBar:
    """A busy indicator (no known end), hidden until something loads."""
    bar = QProgressBar()
    bar.setRange(0, 0)
    bar.setTextVisible(False)
    bar.setMaximumHeight(bar.fontMetrics().height())
    bar.setAccessibleName(name)
    bar.hide()
    return bar


def guarded(widget: QWidget, fn):
    """``fn``, run only while ``widget`` still exists: a result can arrive from the worker after
    its window closed (signed out, locked, quit)."""
    def call(*args):
        if shiboken6.isValid(widget):
            fn(*args)
    return call


def table_view(name: str) -> QTableView:
    view = QTableView()
    view.setAccessibleName(name)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # as loaded until a header is clicked
    view.setSortingEnabled(True)
    view.setAlternatingRowColors(True)
    view.verticalHeader().hide()
    view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    view.horizontalHeader().setStretchLastSection(True)
    view.setWordWrap(False)
    return view


def fit(view: QTableView) -> None:
    """Columns as wide as their contents (once loaded); the operator can widen them."""
    view.resizeColumnsToContents()
    header = view.horizontalHeader()
    widest = view.fontMetrics().averageCharWidth() * 40
    for column in range(header.count()):
        header.resizeSection(column, min(header.sectionSize(column), widest))
    header.setSectionResizeMode(header.count() - 1, QHeaderView.ResizeMode.Stretch)


def common_name(subject: str) -> str:
    """The CN of an RFC 4514 subject string (the whole subject when it has none)."""
    for part in subject.split(","):
        if part.strip().upper().startswith("CN="):
            return part.strip()[3:]
    return subject


def button(text: str, name: str, slot=None) -> QPushButton:
    """A push button saying ``text`` (with its mnemonic), read by screen readers as ``name``."""
    pushed = QPushButton(text)
    pushed.setAccessibleName(name)
    if slot is not None:
        pushed.clicked.connect(slot)
    return pushed


class SearchableTable:
    """A table over a model seen through a filter on every column (case-insensitive), with the
    search field and its label."""

    def __init__(self, owner: QWidget, columns, *, name: str, label: str, placeholder: str, search_name: str):
        self.model = QStandardItemModel(0, len(columns), owner)
        self.model.setHorizontalHeaderLabels([tr(c) for c in columns])
        self.proxy = QSortFilterProxyModel(owner)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterKeyColumn(-1)  # name, serial, status, ...: every column
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.search = QLineEdit()
        self.search.setPlaceholderText(placeholder)
        self.search.setAccessibleName(search_name)
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.proxy.setFilterFixedString)
        self.label = QLabel(label)
        self.label.setBuddy(self.search)
        self.table = table_view(name)
        self.table.setModel(self.proxy)


def fill(model: QStandardItemModel, rows: list[list], key_role_values: list | None = None) -> None:
    """Replace ``model``'s rows; ``key_role_values[i]`` is kept as UserRole data of row i's
    first cell (the serial, the request id)."""
    model.removeRows(0, model.rowCount())
    for i, row in enumerate(rows):
        items = [QStandardItem("" if v is None else str(v)) for v in row]
        for item, value in zip(items, row):
            if isinstance(value, int):  # sorted as a number
                item.setData(value, Qt.ItemDataRole.DisplayRole)
        if key_role_values is not None:
            items[0].setData(key_role_values[i], Qt.ItemDataRole.UserRole)
        model.appendRow(items)


def when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else ""


def reasons() -> list[str]:
    """The revocation reasons :func:`station.service.revocation.parse_reason` accepts."""
    from station.service.revocation import REASONS

    return [r.value for r in REASONS.values()]


class CredentialDialog(QDialog):
    """A credential's details, read only."""

    def __init__(self, view, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(tr("Credential %s") % view.serial)
        form = QFormLayout()
        for label, value in ((tr("Serial"), view.serial), (tr("Subject"), view.subject), (tr("Status"), view.status),
                             (tr("Policy"), view.policy), (tr("Device"), device_words(view.target_device)),
                             (tr("Issued"), when(view.issued_at)), (tr("Expires"), when(view.not_after)),
                             (tr("Request"), str(view.request_id)),
                             (tr("Revoked"), f"{when(view.revoked_at)} ({view.revocation_reason})" if view.revoked_at else "")):
            shown = QLabel(value)
            shown.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.TextSelectableByKeyboard)
            shown.setAccessibleName(label)
            shown.setWordWrap(True)
            form.addRow(label + ":", shown)
        pem = QPlainTextEdit(view.certificate_pem)
        pem.setReadOnly(True)
        pem.setAccessibleName(tr("Certificate (PEM)"))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.Close).setAccessibleName(tr("Close"))
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel(tr("Certificate:")))
        layout.addWidget(pem)
        layout.addWidget(buttons)


class RevokeDialog(QDialog):
    """Revoke a credential: the reason is chosen from the list (RFC 5280 §5.3.1)."""

    def __init__(self, serial: str, subject: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(tr("Revoke credential %s") % serial)
        text = QLabel(tr("Revoke the credential %s of %s? A revoked credential cannot be used again; "
                         "the next CRL lists it.") % (serial, subject))
        text.setWordWrap(True)
        self.reason = QComboBox()
        self.reason.addItems(reasons())
        self.reason.setAccessibleName(tr("Revocation reason"))
        label = QLabel(tr("&Reason:"))
        label.setBuddy(self.reason)
        form = QFormLayout()
        form.addRow(label, self.reason)
        buttons = QDialogButtonBox()
        self.revoke_button = buttons.addButton(tr("Revoke"), QDialogButtonBox.ButtonRole.AcceptRole)
        self.revoke_button.setAccessibleName(tr("Revoke"))
        cancel = buttons.addButton(tr("Cancel"), QDialogButtonBox.ButtonRole.RejectRole)
        cancel.setAccessibleName(tr("Cancel"))
        cancel.setDefault(True)  # the safe choice is the default
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addLayout(form)
        layout.addWidget(buttons)


class CredentialRegistry(QWidget):
    """The searchable credential registry. ``revoked(serial)`` after a revocation; ``error``
    carries a failure's (what, hint) for the window to show."""

    COLUMNS = ("Name", "Status", "Serial", "Issued", "Expires", "Device", "Policy", "Subject")
    revoked = Signal(str)
    failed = Signal(str, str)

    def __init__(self, ctx, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.can_revoke = ctx.operator is not None and Role.ADMINISTRATOR.value in ctx.operator.roles
        self.views: dict[str, object] = {}
        found = SearchableTable(self, self.COLUMNS, name=tr("Credentials"), label=tr("Sea&rch:"),
                                placeholder=tr("Search by name, serial or status"), search_name=tr("Search credentials"))
        self.model, self.proxy, self.search, self.table, search_label = (found.model, found.proxy, found.search, found.table,
                                                                         found.label)
        self.table.doubleClicked.connect(lambda _: self.show_selected())
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed())
        self.show_button = button(tr("&Show…"), tr("Show the credential"), self.show_selected)
        self.revoke_button = button(tr("Re&voke…"), tr("Revoke the credential"), self.revoke_selected)
        self.revoke_button.setVisible(self.can_revoke)
        self.refresh_button = button(tr("Re&fresh"), tr("Refresh the credentials"), self.load)
        self.busy = busy_bar(tr("Loading credentials"))
        self.count = QLabel()
        self.count.setAccessibleName(tr("Credentials shown"))
        top = QHBoxLayout()
        top.addWidget(search_label)
        top.addWidget(self.search, 1)
        top.addWidget(self.refresh_button)
        bottom = QHBoxLayout()
        bottom.addWidget(self.count)
        bottom.addStretch()
        bottom.addWidget(self.show_button)
        bottom.addWidget(self.revoke_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.busy)
        layout.addWidget(self.table, 1)
        layout.addLayout(bottom)
        self.proxy.rowsInserted.connect(self._count)
        self.proxy.rowsRemoved.connect(self._count)
        self.proxy.modelReset.connect(self._count)
        self.proxy.layoutChanged.connect(self._count)
        self._selection_changed()

    def load(self) -> None:
        from station.service.revocation import list_credentials

        self.busy.show()
        self.refresh_button.setEnabled(False)
        self.ctx.call("list credentials", list_credentials, on_done=guarded(self, self._loaded), on_error=guarded(self, self._failed))

    def _loaded(self, views: list) -> None:
        self.busy.hide()
        self.refresh_button.setEnabled(True)
        self.views = {v.serial: v for v in views}
        fill(self.model, [[common_name(v.subject), v.status, v.serial, when(v.issued_at), when(v.not_after), device_words(v.target_device),
                           v.policy, v.subject] for v in views], [v.serial for v in views])
        fit(self.table)
        self._count()
        self._selection_changed()

    def _failed(self, error: BaseException) -> None:
        from station.ui.app import describe

        self.busy.hide()
        self.refresh_button.setEnabled(True)
        self.failed.emit(*describe(error))

    def _count(self, *_) -> None:
        self.count.setText(tr("%d of %d credentials") % (self.proxy.rowCount(), self.model.rowCount()))

    def selected_serial(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self.proxy.index(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole) if rows else None

    def select(self, serial: str) -> bool:
        for row in range(self.proxy.rowCount()):
            if self.proxy.index(row, 0).data(Qt.ItemDataRole.UserRole) == serial:
                self.table.selectRow(row)
                return True
        return False

    def _selection_changed(self) -> None:
        serial = self.selected_serial()
        self.show_button.setEnabled(serial is not None)
        view = self.views.get(serial) if serial else None
        self.revoke_button.setEnabled(view is not None and view.status == "active")

    def show_selected(self) -> None:
        serial = self.selected_serial()
        if serial in self.views:
            CredentialDialog(self.views[serial], self).exec()

    def revoke_selected(self, *, reason: str | None = None) -> None:
        """Ask for the reason (``reason`` given: no dialog, as a test or script does), then
        revoke on the worker and reload."""
        serial = self.selected_serial()
        if not self.can_revoke or serial not in self.views:
            return
        if reason is None:
            dialog = RevokeDialog(serial, self.views[serial].subject, self)
            if dialog.exec() != QDialog.DialogCode.Accepted:
                return
            reason = dialog.reason.currentText()
        from station.service.revocation import revoke

        self.busy.show()
        self.revoke_button.setEnabled(False)
        self.ctx.call("revoke", revoke, serial, reason, actor=self.ctx.operator.identity,
                      on_done=guarded(self, lambda view: self._revoked(view.serial)), on_error=guarded(self, self._failed))

    def _revoked(self, serial: str) -> None:
        self.revoked.emit(serial)
        self.load()


def recent_events(station, limit: int = 200) -> list[dict]:
    """On the worker: the last ``limit`` audit events, newest first (the service's JSON Lines
    export, read back)."""
    from station.service.audit import export

    out = io.StringIO()
    export(station, out)
    events = [e for e in map(json.loads, filter(None, out.getvalue().splitlines())) if e.get("record") == "event"]
    return events[::-1][:limit]


def verdict(report) -> tuple[bool, str]:
    """The verification report in words."""
    if report.ok:
        text = tr("The audit trail is intact: %d events, %d signed checkpoints.") % (report.events, report.checkpoints_verified)
        if report.last_checkpoint_seq < report.events:
            text += " " + tr("Events %d to %d are not yet covered by a signed checkpoint.") % (
                report.last_checkpoint_seq + 1, report.events)
        return True, text
    parts = []
    if report.first_bad is not None:
        parts.append(tr("The audit trail is BROKEN at event %d: %s.") % (report.first_bad.seq, report.first_bad.problem))
    if report.rows:
        parts.append(tr("The records disagree with the audit trail in %d rows (changed behind the station's back; "
                        "the station does not act on them): restore them from a backup or the audit export.") % len(report.rows))
    return False, " ".join(parts) or tr("The audit trail did not verify.")


class AuditView(QWidget):
    """Recent audit events and "Verify chain"."""

    COLUMNS = ("Seq", "When", "Actor", "Action", "Object", "Details")
    failed = Signal(str, str)
    verified = Signal(bool, str)

    def __init__(self, ctx, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        found = SearchableTable(self, self.COLUMNS, name=tr("Audit events"), label=tr("F&ilter:"),
                                placeholder=tr("Filter by actor, action or object"), search_name=tr("Filter audit events"))
        self.model, self.proxy, self.search, self.table, search_label = (found.model, found.proxy, found.search, found.table,
                                                                         found.label)
        self.verify_button = button(tr("&Verify chain"), tr("Verify the audit chain"), self.verify)
        self.refresh_button = button(tr("Re&fresh"), tr("Refresh the audit events"), self.load)
        self.result = QLabel()
        self.result.setWordWrap(True)
        self.result.setAccessibleName(tr("Verification result"))
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.busy = busy_bar(tr("Working on the audit trail"))
        top = QHBoxLayout()
        top.addWidget(search_label)
        top.addWidget(self.search, 1)
        top.addWidget(self.refresh_button)
        top.addWidget(self.verify_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.result)
        layout.addWidget(self.busy)
        layout.addWidget(self.table, 1)

    def load(self) -> None:
        self.busy.show()
        self.refresh_button.setEnabled(False)
        self.ctx.call("recent audit events", recent_events, on_done=guarded(self, self._loaded), on_error=guarded(self, self._failed))

    def _loaded(self, events: list[dict]) -> None:
        self.busy.hide()
        self.refresh_button.setEnabled(True)
        fill(self.model, [[e.get("seq"), str(e.get("occurred_at", ""))[:19].replace("T", " "), e.get("actor"), e.get("action"),
                           f"{e.get('object_type', '')} {e.get('object_id', '')}".strip(),
                           json.dumps(e.get("details_json") or {}, sort_keys=True)] for e in events])
        fit(self.table)

    def verify(self) -> None:
        from station.service.audit import verify

        self.busy.show()
        self.verify_button.setEnabled(False)
        self.result.setText(tr("Verifying the audit chain…"))
        self.ctx.call("verify the audit chain", verify, on_done=guarded(self, self._verified), on_error=guarded(self, self._failed))

    def _verified(self, report) -> None:
        self.busy.hide()
        self.verify_button.setEnabled(True)
        ok, text = verdict(report)
        self.result.setText(text)
        self.result.setStyleSheet("" if ok else "color: #b00020; font-weight: bold;")
        self.verified.emit(ok, text)

    def _failed(self, error: BaseException) -> None:
        from station.ui.app import describe

        self.busy.hide()
        self.verify_button.setEnabled(True)
        self.refresh_button.setEnabled(True)
        self.failed.emit(*describe(error))
