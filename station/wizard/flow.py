"""The issuance wizard's navigation, kept apart from the widgets (as Electrum keeps its
wizard's navigation out of its Qt pages): which page is current, what each page needs, what
is valid, which operation of the issuance session comes next, and what each page shows while
the work runs, after an error and after a cancel.

Pages follow the seven steps of SP 800-157 (:class:`station.issuance.progress.Step`) plus
the end page. Every page is in one of four states: ``waiting`` (it needs something from the
people at the desk), ``busy`` (work runs; progress and Cancel shown), ``error`` (what happened
and what to do; the request stays resumable from the queue) or ``done``.

With a phone target, steps 4-7 also show the phone (:class:`PhoneView`): the code it scans
while the engine waits for its request, how long that code has left, what "New code" does,
and what the phone has done so far, from the target's phone events.

The Qt pages (:mod:`station.ui.wizard`) only render :class:`PageView` objects and pass the
people's choices in; the controller feeds engine progress and results in. No Qt here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import Enum

from station.issuance.progress import Progress, Step
from station.terms import FINAL_STATES, Aal, RequestState


class Status(str, Enum):
    WAITING = "waiting"
    BUSY = "busy"
    ERROR = "error"
    DONE = "done"


class Operation(str, Enum):
    """What the wizard asks the issuance session to do next."""

    OPEN_REQUEST = "open-request"  # step 1: the registrar signs in afresh; the request is recorded
    DECIDE = "decide"  # step 2: a supervisor signs in afresh and approves or rejects
    COMPLETE = "complete"  # steps 3-7: PKI-AUTH, key and certificate, delivery, activation, self-test


PAGES: tuple[Step, ...] = tuple(Step)
#: the request state reached when each step is done
DONE_STATE = {Step.REQUEST: RequestState.REQUESTED, Step.APPROVAL: RequestState.APPROVED,
              Step.PKI_AUTH: RequestState.AUTHENTICATED, Step.KEY_GENERATION: RequestState.KEY_GENERATED,
              Step.DELIVERY: RequestState.DELIVERED, Step.ACTIVATION: RequestState.ACTIVATED,
              Step.SELF_TEST: RequestState.ISSUED}
#: where a request in each state goes on (the page that does the next step)
NEXT_PAGE = {DONE_STATE[done]: following for done, following in zip(PAGES, PAGES[1:])}


@dataclass(frozen=True)
class Problem:
    """An error in words: what happened, what to do next, and the error's code."""

    message: str
    hint: str = ""
    code: str = ""


@dataclass(frozen=True)
class PageView:
    step: Step
    status: Status = Status.WAITING
    message: str = ""  # the latest plain-words line for this page
    substeps: tuple[str, ...] = ()  # the sub-steps seen so far, in order (generation and delivery show them live)
    problem: Problem | None = None

    @property
    def title(self) -> str:
        return self.step.title


@dataclass(frozen=True)
class Applicant:
    """What the Request page shows of the card in the reader (read, not yet authenticated)."""

    reader: str
    name: str
    fascn: str = ""
    photo: bytes | None = None
    expires: str = ""


@dataclass(frozen=True)
class TargetOffer:
    """A target the registrar may choose, as the station describes it (no secret)."""

    name: str  # shown
    uri: str  # the URI the session opens (its PIN comes from its pin-source, or is asked)
    kind: str = "pkcs11"
    hardware: bool = False
    present: bool = True  # the device is plugged in
    details: str = ""  # model and serial where the device tells them


class CodeAction(str, Enum):
    """What the phone's "New code" does."""

    REPLACE = "replace"  # the engine waits for the phone: the target binds anew, the old code dies at once
    GO_ON = "go-on"  # the wait has ended (expired, cancelled): going on with the request makes a new code


@dataclass(frozen=True)
class PhoneStep:
    """One thing the phone did (a phone event's ``kind``: enrolling, enrolled, activated,
    selftest, refused, ended), its detail in the service's words, and whether it went well."""

    kind: str
    detail: str
    ok: bool = True


@dataclass(frozen=True)
class PhoneView:
    """The phone's part of steps 4-7. ``uri`` holds the code's one-time secret: painted as a QR
    code from ``modules`` (made off the GUI thread), never shown as text."""

    uri: str = ""  # the live code's dpiv://enroll URI; "" once spent, expired or dead with its session
    modules: tuple[tuple[bool, ...], ...] = ()  # its QR code, quiet zone included (True: dark)
    expires: float = 0.0  # Unix seconds
    enrolled: bool = False  # the phone sent its request: the code is spent
    steps: tuple[PhoneStep, ...] = ()
    problem: str = ""  # a new code could not be made, in words


@dataclass(frozen=True)
class Choice:
    value: str
    allowed: bool
    reason: str = ""  # why it is not allowed, in words


@dataclass
class IssuanceFlow:
    """One request's way through the wizard. ``request_id`` is None until step 1 is recorded;
    a flow made with :meth:`resume` starts at the page of the request's state."""

    pages: dict[Step, PageView] = field(default_factory=lambda: {step: PageView(step) for step in PAGES})
    current: Step = Step.REQUEST
    request_id: int | None = None
    state: RequestState | None = None
    applicant: Applicant | None = None
    targets: list[TargetOffer] = field(default_factory=list)
    target: TargetOffer | None = None
    aal: Aal = Aal.AAL2
    outcome: object | None = None  # the engine's Outcome once the request ends
    requested_for: Applicant | None = None  # the card the request was recorded from (a supervisor sees it)
    holds_credential: bool = False  # opening was refused: the target token holds a credential already
    replace_confirmed: bool = False  # the registrar confirmed that the new credential replaces it
    phone: PhoneView = field(default_factory=PhoneView)  # the phone's code and steps (a phone target)

    @classmethod
    def resume(cls, request_id: int, state: str, *, aal: str = Aal.AAL2.value) -> IssuanceFlow:
        flow = cls(request_id=request_id, aal=Aal(aal))
        flow._reached(RequestState(state))
        return flow

    # --- what the page needs, and what is valid ----------------------------------------------------
    def aal_choices(self) -> list[Choice]:
        """AAL2 always; AAL3 only onto a hardware target (SP 800-157r1), with the reason when not."""
        hardware = self.target is not None and self.target.hardware
        why = "" if hardware else ("choose a target first" if self.target is None
                                   else f"AAL3 needs a hardware token; {self.target.name} is not one")
        return [Choice(Aal.AAL2.value, True), Choice(Aal.AAL3.value, hardware, why)]

    def target_choices(self) -> list[Choice]:
        return [Choice(t.name, t.present, "" if t.present else "not plugged in") for t in self.targets]

    def missing(self) -> list[str]:
        """What the current page still needs before Next, in words (empty: valid)."""
        operation = self.next_operation()
        if operation is None or operation is Operation.DECIDE:
            return []
        needs = []
        if self.applicant is None and (self.request_id is None or self.state is RequestState.APPROVED):
            needs.append("insert the applicant's PIV card")  # read for the request, PKI-AUTH after approval
        if self.target is None:
            needs.append("choose where the credential goes")
        elif not self.target.present:
            needs.append(f"plug in {self.target.name}")
        if self.request_id is None and not {c.value: c.allowed for c in self.aal_choices()}.get(self.aal.value, False):
            needs.append("choose an assurance level the target allows")
        if self.request_id is None and self.holds_credential and not self.replace_confirmed:
            needs.append("confirm that the new credential replaces the one on the token")
        return needs

    def valid(self) -> bool:
        return not self.missing() and self.view().status is not Status.BUSY and not self.finished

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    def view(self, step: Step | None = None) -> PageView:
        return self.pages[step or self.current]

    def next_operation(self) -> Operation | None:
        """What Next does on the current page; None when nothing is left to do."""
        if self.finished:
            return None
        if self.request_id is None:
            return Operation.OPEN_REQUEST
        if self.state is RequestState.REQUESTED:
            return Operation.DECIDE
        return Operation.COMPLETE

    # --- the phone (a phone target) ------------------------------------------------------------------------
    @property
    def phone_target(self) -> bool:
        return self.target is not None and self.target.kind == "phone"

    def shows_phone(self) -> bool:
        """The phone's panel shows: a phone target once its first code exists (steps 4-7)."""
        return self.phone_target and bool(self.phone.uri or self.phone.steps or self.phone.expires)

    def seconds_left(self, now: float) -> int:
        """Whole seconds the code on screen has left at ``now`` (Unix seconds); 0: none is valid."""
        if not self.phone.uri:
            return 0
        return max(0, math.ceil(self.phone.expires - now))

    def new_code_action(self) -> CodeAction | None:
        """What "New code" does now; None once the phone has enrolled or the request cannot go on."""
        if not self.phone_target or self.phone.enrolled or self.finished or self.request_id is None:
            return None
        waiting = self.current is Step.KEY_GENERATION and self.view().status is Status.BUSY
        if waiting:
            return CodeAction.REPLACE if self.phone.uri else None  # the first code is on its way
        return CodeAction.GO_ON if self.state is RequestState.AUTHENTICATED else None

    def phone_event(self, event, modules=()) -> None:
        """A phone event (``kind``, ``detail``, ``uri``, ``expires``, ``ok``; station.issuance.targets.phone.
        PhoneEvent) and, for a ``code``, its QR modules. A code arriving after the wait has ended
        (a new code racing an expiry or a cancel) died with the session and is not shown."""
        phone = self.phone
        if event.kind == "code":
            if self.view().status is Status.BUSY:
                self.phone = replace(phone, uri=event.uri, modules=tuple(tuple(row) for row in modules),
                                     expires=float(event.expires), enrolled=False, problem="")
            return
        changes = {"uri": "", "modules": ()} if event.kind in ("enrolling", "ended") else {}  # spent, or expired
        self.phone = replace(phone, steps=phone.steps + (PhoneStep(event.kind, event.detail, event.ok),),
                             enrolled=phone.enrolled or event.kind == "enrolling", **changes)

    def phone_problem(self, message: str) -> None:
        """A new code could not be made (the phone had just sent its request)."""
        self.phone = replace(self.phone, problem=message)

    def _code_dies(self) -> None:
        """The operation stopped: the session that held the code closed, and the code with it."""
        if self.phone.uri:
            self.phone = replace(self.phone, uri="", modules=())

    # --- the people's choices ---------------------------------------------------------------------------
    def card_inserted(self, applicant: Applicant) -> None:
        """The card now in the reader (after the request is recorded, only where it is: the
        engine checks it is the applicant's)."""
        self.applicant = applicant

    def card_removed(self) -> None:
        self.applicant = None

    def set_targets(self, offers: list[TargetOffer]) -> None:
        self.targets = list(offers)
        if self.target is not None:
            self.target = next((t for t in self.targets if t.name == self.target.name), None)
        if self.target is None and len([t for t in self.targets if t.present]) == 1:
            self.target = next(t for t in self.targets if t.present)
        if self.aal is Aal.AAL3 and not (self.target and self.target.hardware):
            self.aal = Aal.AAL2

    def confirm_replace(self, confirmed: bool) -> None:
        self.replace_confirmed = confirmed

    def choose_target(self, name: str) -> None:
        chosen = next(t for t in self.targets if t.name == name)
        if chosen != self.target:
            self.holds_credential = self.replace_confirmed = False  # another token: its own question
        self.target = chosen
        if self.aal is Aal.AAL3 and not self.target.hardware:
            self.aal = Aal.AAL2

    def choose_aal(self, value: str) -> None:
        choice = {c.value: c for c in self.aal_choices()}[value]
        if not choice.allowed:
            raise ValueError(choice.reason)
        self.aal = Aal(value)

    # --- the work, as it runs -----------------------------------------------------------------------------
    def started(self, operation: Operation) -> None:
        page = {Operation.OPEN_REQUEST: Step.REQUEST, Operation.DECIDE: Step.APPROVAL}.get(operation, self.current)
        self.current = page
        self._set(page, status=Status.BUSY, problem=None, message="")

    def progressed(self, event: Progress) -> None:
        if event.request_id is not None and self.request_id is None:
            self.request_id = event.request_id
            self.requested_for = self.applicant
        if event.state:
            self._reached(RequestState(event.state), event.step, event.message)
            return
        if event.step is not self.current and self.view().status is Status.BUSY:
            self._set(self.current, status=Status.DONE)
        self.current = event.step
        page = self.view()
        substeps = page.substeps + ((event.substep or event.message,) if (event.substep or event.message) else ())
        self._set(event.step, status=Status.BUSY, message=event.message, substeps=substeps, problem=None)

    def _reached(self, state: RequestState, step: Step | None = None, message: str = "") -> None:
        self.state = state
        done = [s for s, reached in DONE_STATE.items() if _order(reached) <= _order(state)]  # none for an ending
        for s in done:
            self._set(s, status=Status.DONE, problem=None)
        if step is not None and message:
            self._set(step, message=message)
        if state in NEXT_PAGE:
            self.current = NEXT_PAGE[state]
            if self.view().status is not Status.BUSY:
                self._set(self.current, status=Status.WAITING)
        elif state is RequestState.ISSUED:
            self.current = Step.SELF_TEST
        elif state in FINAL_STATES and step is not None:
            self.current = step
            self._set(step, status=Status.ERROR,
                      problem=Problem(message or f"the request is {state.value}", _ENDED_HINT[state], state.value))

    def failed(self, message: str, hint: str = "", code: str = "", *, request_id: int | None = None) -> None:
        """The operation stopped with an error: the page says what happened and what to do.
        The request (if one was recorded) stays in its last committed state, resumable."""
        if request_id is not None and self.request_id is None:
            self.request_id = request_id
        if code == HOLDS_CREDENTIAL and self.request_id is None:
            self.holds_credential = True  # the request page offers "Replace it"; Next opens the request again
            hint = "tick “Replace it” if the new credential is to replace it (the old one is revoked when the new key is made)"
        if code == PHONE_CODE_EXPIRED and self.phone_target:
            hint = "press “New code” to show the applicant a new code; the request waits"  # not the command line's
        self._code_dies()
        resumable = self.request_id is not None and not self.finished
        if resumable and not hint:
            hint = "go on from the queue when ready (Resume)"
        self._set(self.current, status=Status.ERROR, problem=Problem(message, hint, code))

    def synced(self, state: str) -> None:
        """The request's state as the records have it after an error: a request the engine
        ended (``failed`` after a wrong PIN) is finished here too, its problem kept."""
        state = RequestState(state)
        if state in FINAL_STATES and state is not RequestState.ISSUED:
            self.state = state
            page = self.view()
            if page.problem is not None:
                self._set(self.current, problem=replace(page.problem, hint=_ENDED_HINT[state]))

    def cancelled(self, request_id: int | None) -> None:
        self._code_dies()
        if request_id is not None and self.request_id is None:
            self.request_id = request_id
        if self.request_id is None:
            self._set(self.current, status=Status.ERROR, problem=Problem(
                "cancelled before a request was recorded", "nothing was kept; start again when ready", "cancelled"))
        else:
            self._set(self.current, status=Status.ERROR, problem=Problem(
                f"cancelled; request {self.request_id} is kept as it was",
                "resume it from the queue, or cancel the request there to end it", "cancelled"))

    def ended(self, outcome) -> None:
        """The engine returned an Outcome (``state``, ``serial``…)."""
        self.outcome = outcome
        self.request_id = getattr(outcome, "request_id", self.request_id)
        self._reached(RequestState(outcome.state), Step.SELF_TEST)

    def _set(self, step: Step, **changes) -> None:
        self.pages[step] = replace(self.pages[step], **changes)


_STATES_IN_ORDER = [DONE_STATE[step] for step in PAGES]
HOLDS_CREDENTIAL = "target.holds_credential"  # the engine's refusal code (IssuanceRefused.Code.HOLDS_CREDENTIAL)
PHONE_CODE_EXPIRED = "target.request_timeout"  # RequestNotReceived: the phone did not enroll before its code expired
_ENDED_HINT = {
    RequestState.REJECTED: "the supervisor rejected the request; a new request may be opened",
    RequestState.CANCELLED: "the request was cancelled; a new request may be opened",
    RequestState.FAILED: "the request failed and cannot go on; open a new request once the reason is dealt with",
}


def _order(state: RequestState) -> int:
    return _STATES_IN_ORDER.index(state) if state in _STATES_IN_ORDER else -1
