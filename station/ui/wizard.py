"""The registrar's issuance wizard: one page per step of SP 800-157, the step list always
visible with the current step marked, live progress with sub-steps, Cancel that works, and
errors in words with what to do next.

The pages only render the :class:`~station.wizard.flow.IssuanceFlow` (navigation and page
states live there, tested without Qt) and hand the people's choices to it; the
:class:`~station.ui.controller.IssuanceController` runs the work on the device worker. The
applicant's PINs go to the kiosk (:mod:`station.ui.kiosk`), a supervisor's decision to the
approval lock (:mod:`station.ui.approval`); an operator's fresh sign-in is asked here, masked.
Onto a phone, steps 4-7 show the phone's panel (:mod:`station.ui.phone`) in the step's page (one
panel, moved to the current page): the code to scan, its countdown, New code, and what the
phone has done.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

from PySide6.QtCore import QCoreApplication, Qt, QTimer, Signal
from PySide6.QtGui import QAccessible, QFont, QImage, QPixmap
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QGroupBox, QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem, QProgressBar,
                               QPushButton, QRadioButton, QStackedWidget, QVBoxLayout, QWidget)

from station.cancel import Cancelled
from station.issuance.bridge import PromptKind
from station.issuance.progress import Step
from station.ui.controller import CardWatcher, IssuanceController
from station.ui.phone import PhonePanel, step_words
from station.ui.widgets import ErrorBanner
from station.terms import POLICY_NAMES, Aal, RequestState
from station.wizard.flow import Applicant, CodeAction, IssuanceFlow, Operation, Status, TargetOffer


def tr(text: str) -> str:
    return QCoreApplication.translate("station", text)


_STATUS_WORDS = {Status.WAITING: tr("waiting"), Status.BUSY: tr("in progress"), Status.ERROR: tr("needs attention"),
                 Status.DONE: tr("done")}
_NEXT_WORDS = {Operation.OPEN_REQUEST: tr("Open the request"), Operation.DECIDE: tr("Supervisor approval…"),
               Operation.COMPLETE: tr("Go on")}


class SecretDialog(QDialog):
    """An operator's fresh sign-in for one act: the password, masked, handed to the prompt and
    cleared. Opened window-modal (``open()``), never blocking the event loop."""

    def __init__(self, prompt, parent: QWidget | None = None):
        super().__init__(parent)
        self.prompt = prompt
        self.setWindowTitle(tr("Sign in to go on"))
        layout = QVBoxLayout(self)
        text = QLabel(tr("{operator}: type your password to {purpose}.").format(operator=prompt.operator,
                                                                               purpose=prompt.purpose))
        text.setWordWrap(True)
        layout.addWidget(text)
        self.secret = QLineEdit()
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret.setAccessibleName(tr("Password of {operator}").format(operator=prompt.operator))
        layout.addWidget(self.secret)
        buttons = QDialogButtonBox()
        ok = buttons.addButton(tr("Sign in"), QDialogButtonBox.ButtonRole.AcceptRole)
        ok.setDefault(True)
        buttons.addButton(tr("Cancel"), QDialogButtonBox.ButtonRole.RejectRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.finished.connect(self._done)

    def _done(self, result: int) -> None:
        if result == QDialog.DialogCode.Accepted:
            self.prompt.answer(self.secret.text())
        else:
            self.prompt.decline("the operator did not sign in")
        self.secret.clear()


class StepList(QListWidget):
    """The seven steps, the current one marked in bold and in words (for screen readers)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAccessibleName(tr("Steps of the issuance"))
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        for number, step in enumerate(Step, 1):
            self.addItem(QListWidgetItem(f"{number}. {tr(step.title)}"))

    def show_flow(self, flow: IssuanceFlow) -> None:
        for row, step in enumerate(Step):
            item, page = self.item(row), flow.view(step)
            current = step is flow.current
            mark = "▶ " if current else ("✓ " if page.status is Status.DONE else "   ")
            item.setText(f"{mark}{row + 1}. {tr(step.title)}")
            font = item.font()
            font.setBold(current)
            item.setFont(font)
            words = tr("current step") if current else _STATUS_WORDS[page.status]
            item.setData(Qt.ItemDataRole.AccessibleTextRole, f"{row + 1}. {tr(step.title)}, {words}")
        self.setCurrentRow(list(Step).index(flow.current))


class StepPage(QWidget):
    """What every page has: a title, the latest line, a busy bar with the sub-steps seen, and a
    problem banner (what happened, what to do)."""

    def __init__(self, step: Step, parent: QWidget | None = None):
        super().__init__(parent)
        self.step = step
        self.layout_ = QVBoxLayout(self)
        self.title = QLabel(tr(step.title))
        font = QFont(self.title.font())
        font.setPointSizeF(font.pointSizeF() * 1.5)
        font.setBold(True)
        self.title.setFont(font)
        self.layout_.addWidget(self.title)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setAccessibleName(tr("Status"))
        self.layout_.addWidget(self.message)
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)
        self.bar.setAccessibleName(tr("Work in progress"))
        self.bar.hide()
        self.layout_.addWidget(self.bar)
        self.substeps = QLabel()
        self.substeps.setWordWrap(True)
        self.layout_.addWidget(self.substeps)
        self.problem = ErrorBanner()
        self.layout_.addWidget(self.problem)
        self.body = QVBoxLayout()
        self.layout_.addLayout(self.body)
        self.missing = QLabel()
        self.missing.setWordWrap(True)
        self.missing.setAccessibleName(tr("Still needed"))
        self.layout_.addWidget(self.missing)
        self.layout_.addStretch(1)

    def render(self, flow: IssuanceFlow) -> None:
        page = flow.view(self.step)
        self.message.setText(page.message or self.idle_text(flow))
        self.bar.setVisible(page.status is Status.BUSY)
        mark = "✓" if page.status is Status.DONE else "•"  # a finished step's sub-steps are done, not going on
        self.substeps.setText("\n".join(f"{mark} {s}" for s in page.substeps))
        self.substeps.setVisible(bool(page.substeps))
        if page.problem is not None:
            self.problem.show_error(page.problem.message, page.problem.hint)
        else:
            self.problem.clear()
        needs = flow.missing() if flow.current is self.step and page.status is not Status.BUSY else []
        self.missing.setText(tr("Still needed: {needs}").format(needs="; ".join(needs)) if needs else "")
        self.missing.setVisible(bool(needs))

    def idle_text(self, flow: IssuanceFlow) -> str:
        return ""


class RequestPage(StepPage):
    target_chosen = Signal(str)
    aal_chosen = Signal(str)
    replace_confirmed = Signal(bool)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(Step.REQUEST, parent)
        applicant = QGroupBox(tr("Applicant"))
        row = QHBoxLayout(applicant)
        self.photo = QLabel(tr("no photo"))
        self.photo.setAccessibleName(tr("Applicant's photo"))
        self.photo.setMinimumSize(96, 120)
        self.photo.setAlignment(Qt.AlignmentFlag.AlignCenter)
        row.addWidget(self.photo)
        facts = QFormLayout()
        self.name, self.fascn, self.reader = QLabel(), QLabel(), QLabel()
        for label, widget in ((tr("Name"), self.name), (tr("FASC-N"), self.fascn), (tr("Reader"), self.reader)):
            widget.setAccessibleName(label)
            widget.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            facts.addRow(label + ":", widget)
        row.addLayout(facts, 1)
        self.body.addWidget(applicant)
        choices = QFormLayout()
        self.targets = QComboBox()
        self.targets.setAccessibleName(tr("Where the credential goes"))
        self.targets.activated.connect(lambda index: self.target_chosen.emit(self.targets.itemData(index) or ""))
        choices.addRow(tr("&Target:"), self.targets)
        self.target_details = QLabel()
        self.target_details.setWordWrap(True)
        choices.addRow("", self.target_details)
        aal_row = QHBoxLayout()
        self.aal_group = QButtonGroup(self)
        self.aal_buttons: dict[str, QRadioButton] = {}
        for value in ("AAL2", "AAL3"):
            button = QRadioButton(value)
            button.setAccessibleName(tr("Assurance level {value}").format(value=value))
            button.toggled.connect(lambda on, v=value: on and self.aal_chosen.emit(v))
            self.aal_group.addButton(button)
            self.aal_buttons[value] = button
            aal_row.addWidget(button)
        self.aal_reason = QLabel()
        self.aal_reason.setWordWrap(True)
        aal_row.addWidget(self.aal_reason, 1)
        choices.addRow(tr("Assurance:"), aal_row)
        self.replace = QCheckBox(tr("&Replace it: the new credential replaces the one on the token (revoked when the new key is made)"))
        self.replace.setAccessibleName(tr("Replace the credential on the token"))
        self.replace.toggled.connect(self.replace_confirmed.emit)
        self.replace.hide()
        choices.addRow("", self.replace)
        self.body.addLayout(choices)

    def idle_text(self, flow: IssuanceFlow) -> str:
        return tr("Insert the applicant's PIV card, choose the target and the assurance level.")

    def render(self, flow: IssuanceFlow) -> None:
        super().render(flow)
        a = flow.applicant
        self.name.setText(a.name if a else tr("(no card)"))
        self.fascn.setText(a.fascn if a else "")
        self.reader.setText(a.reader if a else "")
        image = QImage.fromData(a.photo) if a and a.photo else QImage()
        if image.isNull():
            self.photo.setText(tr("no photo") if a else "")
        else:
            self.photo.setPixmap(QPixmap.fromImage(image).scaledToHeight(120, Qt.TransformationMode.SmoothTransformation))
        locked = flow.request_id is not None
        self.targets.blockSignals(True)
        self.targets.clear()
        for offer, choice in zip(flow.targets, flow.target_choices()):
            self.targets.addItem(offer.name if choice.allowed else f"{offer.name} ({choice.reason})", offer.name)
        self.targets.setCurrentIndex(self.targets.findData(flow.target.name) if flow.target else -1)
        self.targets.blockSignals(False)
        self.targets.setEnabled(not locked)
        self.target_details.setText(flow.target.details if flow.target else "")
        reasons = []
        for choice in flow.aal_choices():
            button = self.aal_buttons[choice.value]
            button.setEnabled(choice.allowed and not locked)
            button.setToolTip(choice.reason)
            button.blockSignals(True)
            button.setChecked(choice.value == flow.aal.value)
            button.blockSignals(False)
            if not choice.allowed:
                reasons.append(f"{choice.value}: {choice.reason}")
        self.aal_reason.setText("; ".join(reasons))
        self.replace.setVisible(flow.holds_credential and not locked)
        self.replace.blockSignals(True)
        self.replace.setChecked(flow.replace_confirmed)
        self.replace.blockSignals(False)


class ApprovalPage(StepPage):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(Step.APPROVAL, parent)
        box = QGroupBox(tr("The request the supervisor decides"))
        facts = QFormLayout(box)
        self.applicant, self.target, self.aal, self.request = QLabel(), QLabel(), QLabel(), QLabel()
        for label, widget in ((tr("Request"), self.request), (tr("Applicant"), self.applicant),
                              (tr("Target"), self.target), (tr("Assurance"), self.aal)):
            widget.setAccessibleName(label)
            widget.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            facts.addRow(label + ":", widget)
        self.body.addWidget(box)

    def render(self, flow: IssuanceFlow) -> None:
        super().render(flow)
        self.request.setText(str(flow.request_id) if flow.request_id is not None else "")
        self.applicant.setText(flow.applicant.name if flow.applicant else "")
        self.target.setText(f"{flow.target.name} ({flow.target.details})" if flow.target else "")
        self.aal.setText(flow.aal.value)

    def idle_text(self, flow: IssuanceFlow) -> str:
        if flow.request_id is None:
            return tr("The request is approved by a supervisor once it is open.")
        return tr("Request {id} waits for a supervisor. Ask a supervisor to the desk and press "
                  "“Supervisor approval…”.").format(id=flow.request_id)


class PkiAuthPage(StepPage):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(Step.PKI_AUTH, parent)
        self.photo_box = QGroupBox(tr("Is this the person at the desk?"))
        row = QHBoxLayout(self.photo_box)
        self.photo = QLabel()
        self.photo.setAccessibleName(tr("Facial image on the card"))
        row.addWidget(self.photo)
        column = QVBoxLayout()
        self.subject = QLabel()
        self.subject.setWordWrap(True)
        column.addWidget(self.subject)
        self.yes = QPushButton(tr("&Yes, this is the person at the desk"))
        self.no = QPushButton(tr("N&o, it is not"))
        column.addWidget(self.yes)
        column.addWidget(self.no)
        row.addLayout(column, 1)
        self.photo_box.hide()
        self.body.addWidget(self.photo_box)
        self.prompt = None
        self.yes.clicked.connect(lambda: self._answer(True))
        self.no.clicked.connect(lambda: self._answer(False))

    def idle_text(self, flow: IssuanceFlow) -> str:
        return tr("The applicant's PIV card proves itself and its holder types the card's PIN at the kiosk.")

    def ask_photo(self, prompt) -> None:
        self.prompt = prompt
        image = QImage.fromData(prompt.facial_image or b"")
        if image.isNull():
            self.photo.setText(tr("The card's facial image cannot be shown here."))
        else:
            self.photo.setPixmap(QPixmap.fromImage(image).scaledToHeight(200, Qt.TransformationMode.SmoothTransformation))
        self.subject.setText(prompt.subject or "")
        self.photo_box.show()
        self.yes.setFocus()

    def withdraw(self, prompt) -> None:
        if prompt is self.prompt:
            self.prompt = None
            self.photo_box.hide()

    def _answer(self, same_person: bool) -> None:
        if self.prompt is not None:
            self.prompt.answer(same_person)
            self.prompt = None
        self.photo_box.hide()


class ActivationPage(StepPage):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(Step.ACTIVATION, parent)

    def idle_text(self, flow: IssuanceFlow) -> str:
        return tr("The applicant chooses the new PIN at the kiosk.")


class SelfTestPage(StepPage):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(Step.SELF_TEST, parent)
        self.verdict = QLabel()
        self.verdict.setWordWrap(True)
        self.verdict.setAccessibleName(tr("Functional test result"))
        font = QFont(self.verdict.font())
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        self.verdict.setFont(font)
        self.body.addWidget(self.verdict)

    def idle_text(self, flow: IssuanceFlow) -> str:
        return tr("The new credential signs a fresh challenge with the applicant's new PIN.")

    def render(self, flow: IssuanceFlow) -> None:
        super().render(flow)
        outcome = flow.outcome
        if outcome is None:
            self.verdict.clear()
            return
        result = getattr(outcome, "selftest", None)
        passed = outcome.state == "issued"
        checks = "\n".join(f"{'✓' if ok else '✗'} {name.replace('_', ' ')}" for name, ok in (result.checks or {}).items()) \
            if result is not None else ""
        self.verdict.setText((tr("PASS: the credential works. Serial {serial}.") if passed
                              else tr("FAIL: the credential did not pass its test.")).format(serial=outcome.serial)
                             + (f"\n{checks}" if checks else ""))


# The pages, in the order they are built after the window shows (see IssuanceWindow): what
# the next operation needs first.
_PAGE_CLASSES = {Step.REQUEST: RequestPage, Step.APPROVAL: ApprovalPage, Step.PKI_AUTH: PkiAuthPage,
                 Step.KEY_GENERATION: StepPage, Step.DELIVERY: StepPage, Step.ACTIVATION: ActivationPage,
                 Step.SELF_TEST: SelfTestPage}


class Pages(dict):
    """The wizard's pages by step: a page not built yet is built (and put in the stack at its
    place) when it is first looked up."""

    def __init__(self, window: IssuanceWindow):
        super().__init__()
        self.window = window

    def __missing__(self, step: Step) -> StepPage:
        cls = _PAGE_CLASSES[step]
        page = cls(step) if cls is StepPage else cls()
        self[step] = page
        order = list(Step)
        place = sum(1 for built in self if order.index(built) < order.index(step))
        self.window.stack.insertWidget(place, page)
        if step is Step.REQUEST:
            page.target_chosen.connect(self.window._choose_target)
            page.aal_chosen.connect(self.window._choose_aal)
            page.replace_confirmed.connect(self.window._confirm_replace)
        return page


class IssuanceWindow(QWidget):
    """One request's wizard. ``resume=(request_id, state, aal)`` starts at the request's step.

    Built in slices, so that no turn of the event loop is long (the people at the desk, and the
    kiosk, stay responsive while the worker signs in and describes the targets): the step list,
    the buttons and the current step's page at once; then, one per turn after the window
    shows, the kiosk, the approval lock, the watching of the readers and targets, and the
    other pages (:meth:`_build_next`). Whatever needs one of them earlier builds it then:
    :attr:`kiosk`, :attr:`lock` and ``pages[step]`` always answer."""

    closed = Signal()

    def __init__(self, ctx, parent: QWidget | None = None, *, resume: tuple[int, str, str] | None = None):
        super().__init__(parent, Qt.WindowType.Window)
        self.ctx = ctx
        self.announced = ""  # the last step change told to screen readers
        self.flow = IssuanceFlow.resume(resume[0], resume[1], aal=resume[2]) if resume else IssuanceFlow()
        self.controller = IssuanceController(ctx, self)
        self._kiosk = None  # KioskWindow
        self._lock = None  # ApprovalLock
        self._phone: PhonePanel | None = None  # built when a phone's first code arrives
        self._simulator = None  # the demo's phone (station.ui.demo.PhoneSimulator)
        self.setWindowTitle(tr("New derived PIV credential") if not resume
                            else tr("Request {id}").format(id=resume[0]))
        outer = QHBoxLayout(self)
        self.steps = StepList()
        self.steps.setMaximumWidth(self.fontMetrics().horizontalAdvance("M") * 22)
        outer.addWidget(self.steps)
        right = QVBoxLayout()
        outer.addLayout(right, 1)
        self.stack = QStackedWidget()
        self.pages = Pages(self)
        self.request_page = self.pages[Step.REQUEST]  # the card and the targets show here, also when resumed
        right.addWidget(self.stack, 1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.cancel_button = QPushButton(tr("Cancel"))
        self.cancel_button.setAccessibleName(tr("Cancel the step under way"))
        self.next_button = QPushButton(tr("Next"))
        self.next_button.setDefault(True)
        self.close_button = QPushButton(tr("Close"))
        self.receipt_button = QPushButton(tr("Save &receipt…"))
        self.receipt_button.setAccessibleName(tr("Save the applicant's receipt as PDF"))
        self.receipt_button.hide()
        self.receipt_button.clicked.connect(self.save_receipt)
        self.print_button = QPushButton(tr("&Print receipt…"))
        self.print_button.setAccessibleName(tr("Print the applicant's receipt"))
        self.print_button.hide()
        self.print_button.clicked.connect(self.print_receipt)
        for button in (self.receipt_button, self.print_button, self.cancel_button, self.next_button, self.close_button):
            buttons.addWidget(button)
        right.addLayout(buttons)

        self.cancel_button.clicked.connect(self.cancel)
        self.next_button.clicked.connect(self.go_on)
        self.close_button.clicked.connect(self.close)
        c = self.controller
        c.prompted.connect(self._prompted)
        c.withdrawn.connect(self._withdrawn)
        c.progressed.connect(self._progressed)
        c.finished.connect(self._finished)
        c.failed.connect(self._failed)
        c.phone_event.connect(self._phone_heard)
        c.new_code_failed.connect(self._new_code_refused)
        # the applicant's card and the targets are watched for a resumed request too: its
        # remaining steps need them (the engine checks they are the request's own)
        self.watcher = CardWatcher(self)
        self.watcher.changed.connect(self._readers_changed)
        # tokens plugged in or out are noticed without a click: described again every 2 s while
        # the worker is free (PKCS#11 has no insertion event that every module gives)
        self._describing = False
        self.token_timer = QTimer(self)
        self.token_timer.setInterval(2000)
        self.token_timer.timeout.connect(self._describe)
        self.render()
        # after the window shows: the kiosk and the lock (the people look for them at once),
        # then the watching (its threads compete with the first paint for the GIL), the pages
        self._to_build = [self._build_kiosk, self._build_lock, self._watch, Step.APPROVAL, Step.PKI_AUTH,
                          Step.KEY_GENERATION, Step.DELIVERY, Step.ACTIVATION, Step.SELF_TEST]
        QTimer.singleShot(0, self, self._build_next)

    def _watch(self) -> None:
        """Start watching the readers and the targets."""
        self.watcher.start()
        self.token_timer.start()
        self._describe()

    # --- built in slices -------------------------------------------------------------------------------
    def _build_next(self) -> None:
        """One more part of the window (if it is not built yet), then the next turn."""
        if not self._to_build:
            return
        part = self._to_build.pop(0)
        if isinstance(part, Step):
            self.pages[part]  # built on first look-up
        else:
            part()
        QTimer.singleShot(0, self, self._build_next)

    def _build_kiosk(self):
        if self._kiosk is None:
            from station.ui.kiosk import KioskWindow

            self._kiosk = KioskWindow(self)  # hidden; polished now, so that showing it later costs little
            self._kiosk.ensurePolished()
        return self._kiosk

    def _build_lock(self):
        if self._lock is None:
            from station.ui.approval import ApprovalLock

            self._lock = ApprovalLock(self)
            self._lock.decided.connect(self.decide)
            self._lock.dismissed.connect(self.render)
        return self._lock

    @property
    def kiosk(self):
        """The applicant's PIN panel (:class:`~station.ui.kiosk.KioskWindow`)."""
        return self._build_kiosk()

    @property
    def lock(self):
        """The supervisor's approval lock (:class:`~station.ui.approval.ApprovalLock`)."""
        return self._build_lock()

    @property
    def pki_page(self) -> PkiAuthPage:
        return self.pages[Step.PKI_AUTH]

    @property
    def phone(self) -> PhonePanel:
        """The phone's panel, in the current step's page."""
        if self._phone is None:
            self._phone = PhonePanel(demo=self.ctx.demo is not None)
            self._phone.new_code_requested.connect(self._new_code)
            self._phone.simulate_requested.connect(self._simulate_phone)
        return self._phone

    # --- rendering -------------------------------------------------------------------------------------
    def render(self) -> None:
        flow = self.flow
        previous = self.stack.currentWidget()
        self.steps.show_flow(flow)
        self.stack.setCurrentWidget(self.pages[flow.current])
        self.pages[flow.current].render(flow)  # the others render when they become current
        if flow.shows_phone():
            page = self.pages[flow.current]
            if self.phone.parentWidget() is not page:
                page.body.addWidget(self.phone)  # moved from the page before
            self.phone.render(flow)
            self.phone.show()
        elif self._phone is not None:
            self._phone.hide()
            self._phone.timer.stop()
        busy = self.controller.running is not None
        operation = flow.next_operation()
        if self._locked():
            return  # the approval lock holds the window's controls disabled until it lets go
        issued = flow.state is RequestState.ISSUED
        if operation is not None:
            self.next_button.setText(_NEXT_WORDS[operation])
        else:  # the request has ended: close, or start again for the applicant at the desk
            self.next_button.setText(tr("Done") if issued or not flow.finished else tr("New request"))
        self.next_button.setEnabled(not busy and (operation is None or not flow.missing()))
        self.receipt_button.setVisible(issued and flow.outcome is not None)
        self.print_button.setVisible(issued and flow.outcome is not None)
        self.cancel_button.setEnabled(busy)
        self.close_button.setEnabled(not busy)
        if self.stack.currentWidget() is not previous:
            self._announce(tr("Step {n} of 7: {title}").format(n=list(Step).index(flow.current) + 1,
                                                               title=tr(flow.current.title)))

    def _announce(self, text: str) -> None:
        """Tell a screen reader the step changed (Qt >= 6.8 has announcement events)."""
        self.announced = text
        announcement = getattr(__import__("PySide6.QtGui", fromlist=["QAccessibleAnnouncementEvent"]),
                               "QAccessibleAnnouncementEvent", None)
        if announcement is not None and QAccessible.isActive():
            QAccessible.updateAccessibility(announcement(self, text))

    # --- the people's choices --------------------------------------------------------------------------
    def _readers_changed(self, states) -> None:
        wanted = self.ctx.settings.applicant_reader
        cards = [s.reader for s in states if s.present and (wanted is None or s.reader == wanted)]
        operator_reader, token_readers = self.ctx.settings.operator_reader, self.ctx.settings.target_readers
        if token_readers & {s.reader for s in states}:
            self._describe()  # a PIV token plugged in or pulled out: noticed at once, not at the next poll
        cards = [r for r in cards if r != operator_reader and r not in token_readers]
        if not cards:
            self.flow.card_removed()
            self.render()
            return
        if self.flow.applicant is not None and self.flow.applicant.reader in cards:
            return
        reader = cards[0]
        self.ctx.call("read the applicant's card", lambda station: _read_applicant(reader),
                      on_done=self._card_read, on_error=self._card_unreadable)

    def _card_read(self, applicant: Applicant) -> None:
        self.flow.card_inserted(applicant)
        self.render()

    def _card_unreadable(self, exc: BaseException) -> None:
        self.flow.card_removed()
        self.request_page.message.setText(tr("The card in the reader cannot be read: {error}").format(error=exc))

    def _describe(self) -> None:
        if self._describing or self.controller.running is not None or not self.ctx.settings.targets:
            return
        self._describing = True

        def known(offers: list[TargetOffer]) -> None:
            self._describing = False
            if offers != self.flow.targets:
                self.flow.set_targets(offers)
                self.render()

        def failed(exc: BaseException) -> None:
            self._describing = False
            self.flow.failed(str(exc), getattr(exc, "hint", ""))
            self.render()

        self.ctx.call("describe targets", _describe_targets, dict(self.ctx.settings.targets), on_done=known, on_error=failed)

    def _choose_target(self, name: str) -> None:
        if name:
            self.flow.choose_target(name)
        self.render()

    def _confirm_replace(self, confirmed: bool) -> None:
        self.flow.confirm_replace(confirmed)
        self.render()

    def _choose_aal(self, value: str) -> None:
        try:
            self.flow.choose_aal(value)
        except ValueError:
            pass
        self.render()

    # --- the work ----------------------------------------------------------------------------------------
    def go_on(self) -> None:
        operation = self.flow.next_operation()
        if operation is None and self.flow.finished and self.flow.state is not RequestState.ISSUED:
            self.start_again()
            return
        if operation is None:
            self.close()
            return
        if operation is Operation.DECIDE:
            self._open_approval()
            return
        self.flow.started(operation)
        self.controller.run(operation, self.flow)
        self.render()

    def start_again(self) -> None:
        """A new request for the applicant at the desk (the card and the targets are kept)."""
        old = self.flow
        self.flow = IssuanceFlow(applicant=old.applicant, targets=list(old.targets))
        self.flow.set_targets(old.targets)
        if old.target is not None and old.target.present:
            self.flow.choose_target(old.target.name)
        self.setWindowTitle(tr("New derived PIV credential"))
        self.render()

    def receipt_facts(self):
        from station.wizard.facts import ReceiptFacts

        outcome, flow = self.flow.outcome, self.flow
        cert = outcome.certificate
        name = cert.subject.rfc4514_string() if cert is not None else (flow.applicant.name if flow.applicant else "")
        return ReceiptFacts(applicant=flow.applicant.name if flow.applicant else name, serial=outcome.serial or "",
                            policy_oid=str(outcome.policy or ""), policy_name=POLICY_NAMES.get(str(outcome.policy), ""),
                            device=f"{flow.target.name} ({flow.target.details})" if flow.target else "",
                            issued_at=cert.not_valid_before_utc if cert is not None else dt.datetime.now(dt.timezone.utc),
                            station=self.ctx.home.root.name)

    def save_receipt(self) -> None:
        """Ask where (a non-blocking file dialog), then write the PDF there."""
        dialog = QFileDialog(self, tr("Save the receipt"), str(Path.home() / f"receipt-{self.flow.outcome.serial}.pdf"),
                             tr("PDF (*.pdf)"))
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.fileSelected.connect(lambda path: self.write_receipt(Path(path)))
        dialog.open()

    def print_receipt(self) -> None:
        """The system's print dialog, opened without blocking; the receipt prints once accepted."""
        from station.ui.receipt import print_dialog, receipt_document, render

        printer, dialog = print_dialog(self)
        facts = self.receipt_facts()
        dialog.accepted.connect(lambda: render(receipt_document(facts), printer))
        self.print_dialog = dialog
        dialog.setWindowModality(Qt.WindowModality.WindowModal)  # QPrintDialog.open() wants a receiver in PySide6
        dialog.show()

    def write_receipt(self, path: Path) -> None:
        from station.ui.receipt import write_receipt

        write_receipt(path, self.receipt_facts())
        self.pages[Step.SELF_TEST].message.setText(tr("The receipt is saved in {path}.").format(path=path))

    def decide(self, identity: str, approve: bool, reason: str) -> None:
        """A supervisor's decision from the approval lock: run it (they sign in afresh)."""
        self.flow.started(Operation.DECIDE)
        self.controller.run(Operation.DECIDE, self.flow, approver=identity, approve=approve, reason=reason)
        self.render()

    def cancel(self) -> None:
        self.controller.cancel()

    def _open_approval(self) -> None:
        from station.wizard.facts import ApprovalFacts

        flow = self.flow
        a = flow.requested_for or flow.applicant  # the request's applicant, even if the card is out just now
        facts = ApprovalFacts(request_id=flow.request_id, applicant=a.name if a else "", registrar=self.ctx.operator.identity,
                              aal=flow.aal.value, target=flow.target.name if flow.target else "", photo=a.photo if a else None)
        self.lock.show_request(facts)

    def _locked(self) -> bool:
        return self._lock is not None and self._lock.isVisible()

    def _prompted(self, prompt) -> None:
        if prompt.kind is PromptKind.OPERATOR_SECRET:
            if self._locked() and self.controller.running is Operation.DECIDE:
                if not self.lock.answer_secret(prompt):
                    prompt.decline("the supervisor's password was not given")
                return
            dialog = SecretDialog(prompt, self)
            dialog.open()
        elif prompt.kind in (PromptKind.PIN, PromptKind.NEW_PIN):
            self.kiosk.show_for(prompt)
            self.pages[self.flow.current].message.setText(
                tr("The applicant is choosing the new PIN at the kiosk (it is set on the device at activation).")
                if prompt.kind is PromptKind.NEW_PIN else
                tr("The card refused that PIN; the applicant is entering it again at the kiosk.") if prompt.again else
                tr("The applicant is entering the PIN at the kiosk."))
        elif prompt.kind is PromptKind.PHOTO:
            self.pki_page.ask_photo(prompt)
        else:
            prompt.decline("this station asks supervisors on the approval screen")

    def _withdrawn(self, prompt) -> None:
        if self._kiosk is not None:
            self._kiosk.withdraw(prompt)
        if Step.PKI_AUTH in self.pages:
            self.pki_page.withdraw(prompt)
        for dialog in self.findChildren(SecretDialog):
            if dialog.prompt is prompt:
                dialog.secret.clear()
                dialog.done(QDialog.DialogCode.Rejected)

    def _phone_heard(self, event, modules) -> None:
        self.flow.phone_event(event, modules or ())
        self.render()
        if event.kind != "code" and self.flow.phone.steps:  # what the phone did, told to screen readers
            last = self.flow.phone.steps[-1]
            self._announce(step_words(last.kind, last.detail, last.ok))

    def _new_code(self) -> None:
        """New code: the waiting target binds anew (the old code dies at once), or, once the
        wait has ended, going on with the request makes one (the flow says which)."""
        action = self.flow.new_code_action()
        if action is CodeAction.REPLACE:
            self.controller.new_code()
        elif action is CodeAction.GO_ON:
            self.go_on()

    def _new_code_refused(self, message: str) -> None:
        self.flow.phone_problem(message)
        self.render()

    def _simulate_phone(self) -> None:
        """Demo: the reference phone client scans the code as painted on screen."""
        from station.ui.demo import PhoneSimulator  # the demo is running: its module is loaded

        if self._simulator is None:
            self._simulator = PhoneSimulator(self)
            self._simulator.finished.connect(self._simulated)
        self._simulator.run(self.phone.qr.grab().toImage(), aal3=self.flow.aal is Aal.AAL3)

    def _simulated(self, words: str) -> None:
        self.phone.simulating = False
        self.phone.show_note(words)
        self.render()

    def _progressed(self, event) -> None:
        self.flow.progressed(event)
        self.render()

    def _finished(self, operation: Operation, result) -> None:
        if operation is Operation.DECIDE and self._lock is not None:
            self._lock.unlock()
        if hasattr(result, "state"):
            self.flow.ended(result)
        self.render()

    def _failed(self, operation: Operation, error: BaseException) -> None:
        request_id = getattr(error, "request_id", None) or self.flow.request_id
        if request_id is not None:  # a refusal may have ended the request: ask the records, not the error
            from station.service.requests import state_of

            self.ctx.call("the request's state", state_of, request_id, on_done=self._state_known)
        if isinstance(error, Cancelled):
            self.flow.cancelled(error.request_id)
        else:
            self.flow.failed(str(error), getattr(error, "hint", ""), getattr(error, "code", ""),
                             request_id=getattr(error, "request_id", None))
            if operation is Operation.DECIDE and self._locked():
                self.lock.show_refusal(str(error), getattr(error, "hint", ""))
        self.render()

    def _state_known(self, state: str | None) -> None:
        if state is not None:
            self.flow.synced(state)
            self.render()

    def closeEvent(self, event) -> None:
        if self.controller.running is not None:
            event.ignore()  # Cancel first: the work stops at its next safe point
            return
        # the watcher ends within a poll (0.25 s); its stop() waits for that, on a thread of
        # its own: the GUI thread does not
        threading.Thread(target=self.watcher.stop, name="card-watcher-stop", daemon=True).start()
        self.token_timer.stop()
        if self._phone is not None:
            self._phone.timer.stop()
        self._to_build = []
        if self._kiosk is not None:
            self._kiosk.close()
        self.closed.emit()
        super().closeEvent(event)


def _describe_targets(station, offers: dict[str, str]) -> list[TargetOffer]:
    from station.service.session import describe_targets

    return [TargetOffer(**d) for d in describe_targets(station, offers)]


def _read_applicant(reader: str) -> Applicant:
    from station.service.session import read_applicant

    summary = read_applicant(reader)
    return Applicant(reader=reader, name=summary.get("name") or "", fascn=summary.get("fascn") or "",
                     photo=summary.get("photo"), expires=summary.get("expiry") or "")
