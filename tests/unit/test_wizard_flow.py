"""The wizard's navigation without any widget: what each page needs, what Next does, and what
the pages show as the engine's progress, errors and cancels come in."""

from __future__ import annotations

import pytest

from station.issuance.progress import Progress, Step
from station.issuance.targets.phone import PhoneEvent
from station.wizard.flow import Applicant, CodeAction, IssuanceFlow, Operation, Status, TargetOffer

SOFT = TargetOffer("SoftHSM token", "pkcs11:token=a", hardware=False)
HARD = TargetOffer("Hardware token", "pkcs11:token=b", hardware=True)
CARD = Applicant("Reader 0", "Kelly Golden", fascn="1234")


def test_the_request_page_says_what_it_still_needs_until_it_is_valid():
    flow = IssuanceFlow()
    assert flow.missing() == ["insert the applicant's PIV card", "choose where the credential goes"]
    assert not flow.valid() and flow.next_operation() is Operation.OPEN_REQUEST
    flow.set_targets([SOFT, HARD])
    assert flow.target is None  # two to choose from: none chosen for the registrar
    flow.card_inserted(CARD)
    flow.choose_target("SoftHSM token")
    assert flow.missing() == [] and flow.valid()
    flow.card_removed()
    assert flow.missing() == ["insert the applicant's PIV card"]


def test_aal3_only_onto_hardware_and_the_reason_is_given():
    flow = IssuanceFlow()
    flow.set_targets([SOFT, HARD])
    flow.choose_target("SoftHSM token")
    aal3 = {c.value: c for c in flow.aal_choices()}["AAL3"]
    assert not aal3.allowed and "SoftHSM token is not one" in aal3.reason
    with pytest.raises(ValueError, match="needs a hardware token"):
        flow.choose_aal("AAL3")
    flow.choose_target("Hardware token")
    flow.choose_aal("AAL3")
    flow.choose_target("SoftHSM token")  # the choice falls back to what the new target allows
    assert flow.aal.value == "AAL2"


def test_an_unplugged_target_is_offered_disabled_and_blocks_next():
    flow = IssuanceFlow()
    gone = TargetOffer("USB token", "pkcs11:token=c", present=False)
    flow.set_targets([gone])
    assert flow.target is None and flow.target_choices()[0].reason == "not plugged in"
    flow.card_inserted(CARD)
    flow.choose_target("USB token")
    assert "plug in USB token" in flow.missing()


def test_progress_moves_the_pages_and_marks_steps_done():
    flow = IssuanceFlow()
    flow.set_targets([SOFT])
    assert flow.target == SOFT  # the only one present is chosen
    flow.card_inserted(CARD)
    flow.started(Operation.OPEN_REQUEST)
    assert flow.view().status is Status.BUSY and not flow.valid()
    flow.progressed(Progress(Step.REQUEST, "request 7 opened", state="requested", request_id=7))
    assert flow.request_id == 7 and flow.current is Step.APPROVAL
    flow.card_removed()  # out of the reader for a moment: the supervisor still sees whose request it is
    assert flow.applicant is None and flow.requested_for == CARD
    assert flow.view(Step.REQUEST).status is Status.DONE and flow.view().status is Status.WAITING
    assert flow.next_operation() is Operation.DECIDE
    flow.started(Operation.DECIDE)
    flow.progressed(Progress(Step.APPROVAL, "approved by sup", state="approved", request_id=7))
    assert flow.current is Step.PKI_AUTH and flow.next_operation() is Operation.COMPLETE
    flow.started(Operation.COMPLETE)
    flow.progressed(Progress(Step.KEY_GENERATION, "generating", substep="generating the key on the token"))
    flow.progressed(Progress(Step.KEY_GENERATION, "asking the CA", substep="certificate"))
    assert flow.current is Step.KEY_GENERATION
    assert flow.view().substeps == ("generating the key on the token", "certificate")
    assert flow.view(Step.PKI_AUTH).status is Status.DONE  # left behind busy: done


def test_an_error_keeps_the_request_resumable_and_says_so():
    flow = IssuanceFlow.resume(9, "approved")
    assert flow.current is Step.PKI_AUTH and flow.view(Step.APPROVAL).status is Status.DONE
    flow.started(Operation.COMPLETE)
    flow.failed("wrong PIV PIN, 2 tries left", "", "pin-incorrect")
    page = flow.view()
    assert page.status is Status.ERROR and page.problem.message.startswith("wrong PIV PIN")
    assert "Resume" in page.problem.hint and flow.next_operation() is Operation.COMPLETE


def test_a_cancel_before_and_after_the_request_is_recorded():
    flow = IssuanceFlow()
    flow.cancelled(None)
    assert "nothing was kept" in flow.view().problem.hint
    flow = IssuanceFlow.resume(3, "key_generated")
    assert flow.current is Step.DELIVERY
    flow.cancelled(3)
    assert "request 3 is kept" in flow.view().problem.message


def test_a_rejection_ends_the_flow():
    flow = IssuanceFlow.resume(4, "requested")
    flow.progressed(Progress(Step.APPROVAL, "rejected by sup: wrong person", state="rejected", request_id=4))
    assert flow.finished and flow.next_operation() is None and not flow.valid()
    assert flow.view(Step.APPROVAL).status is Status.ERROR and "rejected" in flow.view(Step.APPROVAL).problem.hint


def test_issued_marks_every_page_done():
    flow = IssuanceFlow.resume(5, "activated")

    class Outcome:
        request_id, state, serial = 5, "issued", "0a"

    flow.ended(Outcome())
    assert all(flow.view(step).status is Status.DONE for step in Step) and flow.finished


def test_a_token_holding_a_credential_needs_replace_ticked_before_the_request_opens_again():
    flow = IssuanceFlow()
    flow.set_targets([SOFT, HARD])
    flow.choose_target(HARD.name)
    flow.card_inserted(CARD)
    flow.started(Operation.OPEN_REQUEST)
    flow.failed("the token already holds derived credential 1a2b of this station", "confirm so", "target.holds_credential")
    assert flow.holds_credential and flow.request_id is None and "Replace it" in flow.view().problem.hint
    assert flow.missing() == ["confirm that the new credential replaces the one on the token"]
    flow.confirm_replace(True)
    assert flow.missing() == [] and flow.next_operation() is Operation.OPEN_REQUEST and flow.replace_confirmed
    flow.choose_target(SOFT.name)  # another token: nothing confirmed for it
    assert not flow.holds_credential and not flow.replace_confirmed


PHONE = TargetOffer("Phone", "phone:", kind="phone", hardware=True)


def phone_waiting() -> IssuanceFlow:
    """A phone request at step 4: the engine waits for the phone's request."""
    flow = IssuanceFlow.resume(9, "authenticated")
    flow.set_targets([PHONE])
    flow.started(Operation.COMPLETE)
    flow.progressed(Progress(Step.KEY_GENERATION, "waiting for the device's certification request", "waiting for the device"))
    return flow


def test_the_phone_code_counts_down_and_new_code_replaces_it_while_the_engine_waits():
    flow = phone_waiting()
    assert not flow.shows_phone() and flow.new_code_action() is None  # the first code is on its way
    flow.phone_event(PhoneEvent("code", "scan", "dpiv://enroll?otp=a", 1000), [[True, False]])
    assert flow.shows_phone() and flow.phone.modules == ((True, False),)
    assert flow.seconds_left(1000 - 581.5) == 582 and flow.seconds_left(1000) == 0 and flow.seconds_left(2000) == 0
    assert flow.new_code_action() is CodeAction.REPLACE
    flow.phone_event(PhoneEvent("code", "scan", "dpiv://enroll?otp=b", 1600), [[False]])
    assert flow.phone.uri.endswith("otp=b") and flow.seconds_left(1000) == 600


def test_the_phone_steps_are_listed_and_the_code_is_spent_once_it_enrolls():
    flow = phone_waiting()
    flow.phone_event(PhoneEvent("code", "scan", "dpiv://enroll?otp=a", 1000), [[True]])
    flow.phone_event(PhoneEvent("refused", "AAL3 needs a verified key attestation: none was sent", ok=False))
    assert flow.phone.uri and flow.new_code_action() is CodeAction.REPLACE  # a refused request does not spend the code
    for kind, detail, ok in (("enrolling", "the phone sent its P-256 key's request", True),
                             ("enrolled", "the certificate is on the phone", True),
                             ("activated", "the phone protects the key", True), ("selftest", "failed: policy", False)):
        flow.phone_event(PhoneEvent(kind, detail, ok=ok))
    assert [(s.kind, s.ok) for s in flow.phone.steps] == [("refused", False), ("enrolling", True), ("enrolled", True),
                                                          ("activated", True), ("selftest", False)]
    assert flow.phone.uri == "" and flow.phone.modules == () and flow.seconds_left(0) == 0
    assert flow.new_code_action() is None


def test_once_the_wait_ends_the_code_is_dead_and_new_code_goes_on_with_the_request():
    flow = phone_waiting()
    flow.phone_event(PhoneEvent("code", "scan", "dpiv://enroll?otp=a", 1000), [[True]])
    flow.phone_event(PhoneEvent("ended", "the code expired before the phone enrolled", ok=False))
    flow.failed("request 9 is left waiting: the phone did not enroll before its code expired",
                "make the device send its request, then `station requests resume ID`", "target.request_timeout")
    assert flow.view().problem.hint.startswith("press “New code”")
    assert flow.shows_phone() and flow.seconds_left(0) == 0 and flow.phone.steps[-1].ok is False
    assert flow.new_code_action() is CodeAction.GO_ON and flow.next_operation() is Operation.COMPLETE
    flow.phone_event(PhoneEvent("code", "scan", "dpiv://enroll?otp=late", 1600), [[True]])  # raced the end: died with it
    assert flow.phone.uri == ""
    flow.started(Operation.COMPLETE)
    flow.progressed(Progress(Step.KEY_GENERATION, "waiting for the device's certification request", "waiting for the device"))
    flow.phone_event(PhoneEvent("code", "scan", "dpiv://enroll?otp=c", 1600), [[True]])
    assert flow.seconds_left(1000) == 600


def test_a_cancel_kills_the_code_and_no_new_code_once_the_request_has_ended():
    flow = phone_waiting()
    flow.phone_event(PhoneEvent("code", "scan", "dpiv://enroll?otp=a", 1000), [[True]])
    flow.cancelled(9)
    assert flow.phone.uri == "" and flow.new_code_action() is CodeAction.GO_ON
    flow.synced("failed")
    assert flow.new_code_action() is None
    assert IssuanceFlow().new_code_action() is None  # not a phone
