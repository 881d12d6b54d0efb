"""The main window: what the signed-in operator's roles let them do, one tab per task.

- registrar: the open requests ("Resume") and a big "New derived PIV credential" button;
- supervisor: the requests awaiting approval ("Approve or deny…");
- administrator and auditor: the credential registry and the audit trail
  (:mod:`station.ui.registry`; only administrators revoke).

The window starts nothing itself: ``new_issuance_requested()``, ``resume_requested(id)`` and
``approve_requested(id)`` are wired by the application to the wizard and the approval screen;
``sign_out_requested()`` to the shell. Every list is loaded on the device worker.
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence, QStandardItemModel
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QMainWindow, QMessageBox, QPushButton, QTabWidget, QVBoxLayout,
                               QWidget)

from station.terms import RequestState, Role
from station.ui.registry import AuditView, CredentialRegistry, busy_bar, button, fill, fit, guarded, table_view


def tr(text: str) -> str:
    return QCoreApplication.translate("station", text)


class RequestsPanel(QWidget):
    """Requests in a table: the open ones (``states`` None) or those in ``states``.
    ``chosen(request_id)`` when the action button is pressed (or a row double-clicked)."""

    COLUMNS = ("Request", "State", "AAL", "Target", "Registrar", "Opened")
    chosen = Signal(int)
    failed = Signal(str, str)

    def __init__(self, ctx, *, action: str, action_name: str, empty: str, states: set[str] | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx, self.states, self.empty_text = ctx, states, empty
        self.model = QStandardItemModel(0, len(self.COLUMNS), self)
        self.model.setHorizontalHeaderLabels([tr(c) for c in self.COLUMNS])
        self.table = table_view(action_name)
        self.table.setModel(self.model)
        self.table.doubleClicked.connect(lambda _: self._choose())
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed())
        self.action = QPushButton(action)
        self.action.setAccessibleName(action_name)
        self.action.clicked.connect(self._choose)
        self.refresh_button = button(tr("Re&fresh"), tr("Refresh the requests"), self.load)
        self.busy = busy_bar(tr("Loading requests"))
        self.status = QLabel()
        self.status.setAccessibleName(tr("Requests shown"))
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.status, 1)
        buttons.addWidget(self.refresh_button)
        buttons.addWidget(self.action)
        self.layout_ = QVBoxLayout(self)
        self.layout_.addWidget(self.busy)
        self.layout_.addWidget(self.table, 1)
        self.layout_.addLayout(buttons)
        self._selection_changed()

    def load(self) -> None:
        from station.service.requests import listing

        self.busy.show()
        self.refresh_button.setEnabled(False)
        self.ctx.call("list requests", listing, open_only=True, on_done=guarded(self, self._loaded), on_error=guarded(self, self._failed))

    def _loaded(self, summaries: list) -> None:
        self.busy.hide()
        self.refresh_button.setEnabled(True)
        rows = [s for s in summaries if self.states is None or s.state in self.states]
        fill(self.model, [[s.request_id, s.state, s.aal, s.target_kind, s.registrar, s.created_at[:16].replace("T", " ")]
                          for s in rows], [s.request_id for s in rows])
        fit(self.table)
        self.status.setText(self.empty_text if not rows else tr("Requests shown: %d") % len(rows))
        if rows:
            self.table.selectRow(0)
        self._selection_changed()

    def _failed(self, error: BaseException) -> None:
        from station.ui.app import describe

        self.busy.hide()
        self.refresh_button.setEnabled(True)
        self.failed.emit(*describe(error))

    def request_ids(self) -> list[int]:
        return [self.model.index(row, 0).data(Qt.ItemDataRole.UserRole) for row in range(self.model.rowCount())]

    def selected(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return self.model.index(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole) if rows else None

    def _selection_changed(self) -> None:
        self.action.setEnabled(self.selected() is not None)

    def _choose(self) -> None:
        request_id = self.selected()
        if request_id is not None:
            self.chosen.emit(int(request_id))


class MainWindow(QMainWindow):
    new_issuance_requested = Signal()
    resume_requested = Signal(int)
    approve_requested = Signal(int)
    sign_out_requested = Signal()

    def __init__(self, ctx, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        operator = ctx.operator
        self.roles = set(operator.roles) if operator is not None else set()
        self.setWindowTitle(tr("Derived PIV Issuance Station — %s") % (operator.identity if operator else ""))
        self.tabs = QTabWidget()
        self.tabs.setAccessibleName(tr("Tasks"))
        self.setCentralWidget(self.tabs)
        self.requests = self.approvals = self.registry = self.audit = None
        self.new_button = None

        if Role.REGISTRAR.value in self.roles:
            self.requests = RequestsPanel(ctx, action=tr("&Resume"), action_name=tr("Resume the request"),
                                          empty=tr("No open requests."))
            self.requests.chosen.connect(self.resume_requested)
            self.new_button = QPushButton(tr("&New derived PIV credential"))
            self.new_button.setAccessibleName(tr("New derived PIV credential"))
            font = self.new_button.font()
            font.setPointSizeF(font.pointSizeF() * 1.4)
            font.setBold(True)
            self.new_button.setFont(font)
            self.new_button.setMinimumHeight(self.new_button.fontMetrics().height() * 3)
            self.new_button.clicked.connect(self.new_issuance_requested)
            self.requests.layout_.insertWidget(0, self.new_button)
            self.requests.layout_.insertWidget(1, QLabel(tr("Open requests:")))
            self.tabs.addTab(self.requests, tr("&Requests"))
        if Role.SUPERVISOR.value in self.roles:
            self.approvals = RequestsPanel(ctx, action=tr("&Approve or deny…"), action_name=tr("Approve or deny the request"),
                                           empty=tr("No request awaits approval."), states={RequestState.REQUESTED.value})
            self.approvals.chosen.connect(self.approve_requested)
            self.tabs.addTab(self.approvals, tr("A&pprovals"))
        if self.roles & {Role.ADMINISTRATOR.value, Role.AUDITOR.value}:
            self.registry = CredentialRegistry(ctx)
            self.registry.failed.connect(self.show_failure)
            self.tabs.addTab(self.registry, tr("&Credentials"))
            self.audit = AuditView(ctx)
            self.audit.failed.connect(self.show_failure)
            self.tabs.addTab(self.audit, tr("Audit &trail"))
        for panel in (self.requests, self.approvals):
            if panel is not None:
                panel.failed.connect(self.show_failure)

        self._menus()
        self.who = QLabel()
        self.who.setAccessibleName(tr("Signed-in operator"))
        self.statusBar().addPermanentWidget(self.who)
        if operator is not None:
            roles = ", ".join(r.value for r in Role if r.value in self.roles)
            self.who.setText(tr("Signed in: %s (%s) with %s") % (operator.identity, roles, operator.method))
        self.refresh()

    def _action(self, menu, text: str, shortcut, slot) -> QAction:
        action = QAction(text, self)
        action.setShortcut(shortcut if isinstance(shortcut, QKeySequence.StandardKey) else QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _menus(self) -> None:
        station = self.menuBar().addMenu(tr("&Station"))
        self.refresh_action = self._action(station, tr("&Refresh"), QKeySequence.StandardKey.Refresh, self.refresh)
        station.addSeparator()
        self.sign_out_action = self._action(station, tr("Sign &out"), "Ctrl+Shift+L", self.sign_out_requested)
        self.quit_action = self._action(station, tr("&Quit"), QKeySequence.StandardKey.Quit, QCoreApplication.quit)
        self.new_action = None
        if self.requests is not None:
            issuance = self.menuBar().addMenu(tr("&Issuance"))
            self.new_action = self._action(issuance, tr("&New derived PIV credential…"), QKeySequence.StandardKey.New,
                                           self.new_issuance_requested)
            self._action(issuance, tr("&Resume the selected request"), "Ctrl+R", self.requests._choose)
        if self.approvals is not None:
            approvals = self.menuBar().addMenu(tr("&Approvals"))
            self._action(approvals, tr("&Approve or deny the selected request…"), "Ctrl+Shift+A", self.approvals._choose)
        if self.audit is not None:
            audit = self.menuBar().addMenu(tr("A&udit"))
            self._action(audit, tr("&Verify the chain"), "Ctrl+Shift+V",
                         lambda: (self.tabs.setCurrentWidget(self.audit), self.audit.verify()))

    def refresh(self) -> None:
        """Reload every list this operator sees (each on the worker)."""
        for panel in (self.requests, self.approvals, self.registry, self.audit):
            if panel is not None:
                panel.load()

    def show_failure(self, what: str, hint: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, tr("Something went wrong"), what, QMessageBox.StandardButton.Ok, self)
        box.setInformativeText(hint)
        box.setStyleSheet("QLabel#qt_msgbox_label { min-width: 28em; }")
        box.open()  # not modal to the event loop: the window keeps running
