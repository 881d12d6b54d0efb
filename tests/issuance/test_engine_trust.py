"""The engine trusts no row alone: each step finds the request's state in the audit chain,
re-checks the operators, the applicant's limit and the device, and a request that cannot go on
ends ``failed`` (issue 9, sections 2 to 4)."""

from __future__ import annotations

import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from pkcs11 import Attribute, ObjectClass

from station.issuance.engine import IssuanceEngine, IssuanceRefused
from station.devices.piv import PivSession
from station.devices.piv.fascn import FascN
from station.devices.virtual import VirtualConnection, load_card_image
from station.issuance.engine import _same_person
from station.issuance.targets import open_target
from station.issuance.targets.pkcs11 import Pkcs11Target
from station.terms import AuthMethod, Role
from station.service import issuance as records
from station.service.operators import add_operator, disable_operator
from tests.conftest import CARDS, GOLDEN, TEST_PIN, init_softhsm_token
from tests.issuance.test_engine import (  # noqa: F401  (station, token: fixtures)
    NEW_PIN,
    Crash,
    DiesAfterGenerating,
    Script,
    audit,
    card,
    engine,
    issue_until_the_crash,
    rows,
    station,
    tamper,
    token,
)


def opened_and_approved(eng, target, applicant=None) -> int:
    request_id = eng.open_request(applicant or card(), registrar="reg", aal="AAL2", target=target)
    eng.approve(request_id, approver="sup")
    return request_id


def refusals(station) -> list[str]:
    return [r for (r,) in rows(station, "SELECT json_extract(details, '$.rule') FROM audit_events WHERE action = 'issuance.refused'")]


# --- section 2: the database is not the authority ---------------------------------------------------

def test_an_approval_written_into_the_database_is_refused(station, icam_profile, crl_cache, token):
    """Refused at approval (self-approval), then `UPDATE requests SET state='approved'` behind
    the station's back: no step acts on it, and the refusal is audited."""
    eng = engine(station, icam_profile, crl_cache)
    target = open_target(token)
    request_id = eng.open_request(card(), registrar="sup", aal="AAL2", target=target)
    with pytest.raises(IssuanceRefused):
        eng.approve(request_id, approver="sup")
    tamper(station, "UPDATE requests SET state = 'approved', approver_id = (SELECT id FROM operators WHERE identity = 'sup')")
    with pytest.raises(IssuanceRefused) as info:
        eng.complete(request_id, card(), target, registrar="reg")
    assert info.value.code == "audit.unbacked" and "has no request.approved event" in str(info.value)
    assert refusals(station)[-1] == "audit.unbacked"
    assert rows(station, "SELECT count(*) FROM credentials") == [(0,)]
    assert '"request.applicant_authenticated"' not in audit(station) and '"target.key_planned"' not in audit(station)


def test_a_state_moved_back_in_the_database_is_refused(station, icam_profile, crl_cache, token):
    """A request that failed PKI-AUTH, set back to `approved` in the database, stays refused."""
    eng = IssuanceEngine(station, icam_profile.with_revocation("crl"), Script(), crl_cache=crl_cache)
    target = open_target(token)
    request_id = opened_and_approved(eng, target)
    with pytest.raises(IssuanceRefused):
        eng.complete(request_id, card(CARDS / "24_Revoked_Certificates"), target, registrar="reg")
    tamper(station, "UPDATE requests SET state = 'approved'")
    with pytest.raises(IssuanceRefused) as info:
        eng.complete(request_id, card(), target, registrar="reg")
    assert info.value.code == "audit.unbacked" and eng.state(request_id) == "approved"


def test_an_approval_without_the_approvers_sign_in_is_refused(station, icam_profile, crl_cache, token):
    """The `request.approved` event is there, but the approver never signed in for it."""
    eng = engine(station, icam_profile, crl_cache)
    target = open_target(token)
    request_id = eng.open_request(card(), registrar="reg", aal="AAL2", target=target)
    records.approve_request(station, request_id, approver="sup")  # past the engine: no sign-in
    with pytest.raises(IssuanceRefused) as info:
        eng.complete(request_id, card(), target, registrar="reg")
    assert info.value.code == "audit.approval_unsigned" and eng.state(request_id) == "approved"
    assert rows(station, "SELECT count(*) FROM credentials") == [(0,)]


# --- section 3: every step re-checks the operators and the limit --------------------------------------

def test_a_disabled_approver_ends_the_request(station, icam_profile, crl_cache, token):
    eng = engine(station, icam_profile, crl_cache)
    target = open_target(token)
    request_id = opened_and_approved(eng, target)
    disable_operator(station, "sup", actor="admin")
    with pytest.raises(IssuanceRefused) as info:
        eng.complete(request_id, card(), target, registrar="reg")
    assert info.value.code == "issuance.approval_withdrawn" and eng.state(request_id) == "failed"
    assert '"request.failed"' in audit(station)


class DisablesTheRegistrar(Pkcs11Target):
    """The registrar is disabled while the token generates the key."""

    def __init__(self, uri, station):
        super().__init__(uri)
        self.station = station

    def generate_key(self, algorithm):
        public_key = super().generate_key(algorithm)
        disable_operator(self.station, "reg", actor="admin")
        return public_key


def test_a_registrar_disabled_part_way_stops_at_the_next_step(station, icam_profile, crl_cache, token):
    eng = engine(station, icam_profile, crl_cache)
    target = DisablesTheRegistrar(token, station)
    request_id = opened_and_approved(eng, target)
    with pytest.raises(IssuanceRefused) as info:
        eng.complete(request_id, card(), target, registrar="reg")
    assert info.value.code == "operator.unknown" and eng.state(request_id) == "key_generated"
    assert '"credential.delivered"' not in audit(station)


def test_the_approver_cannot_carry_out_the_request(station, icam_profile, crl_cache, token):
    """`sup` holds both roles and approved: it may not resume the request as its registrar."""
    eng = engine(station, icam_profile, crl_cache)
    target = open_target(token)
    request_id = opened_and_approved(eng, target)
    with pytest.raises(IssuanceRefused) as info:
        eng.complete(request_id, card(), target, registrar="sup")
    assert info.value.code == "issuance.separation_of_duties" and eng.state(request_id) == "approved"


def test_a_wrong_applicant_pin_ends_the_request(station, icam_profile, crl_cache, token):
    class WrongPin(Script):
        def request_pin(self, *, pin_kind, tries_left):
            return "135790" if pin_kind != "credential" else NEW_PIN

    eng = engine(station, icam_profile, crl_cache, WrongPin())
    target = open_target(token)
    request_id = opened_and_approved(eng, target)
    with pytest.raises(IssuanceRefused) as info:
        eng.complete(request_id, card(), target, registrar="reg")
    assert info.value.code == "pin-incorrect" and eng.state(request_id) == "failed"
    assert eng.complete(request_id, card(), target, registrar="reg").state == "failed"  # nobody resumes it
    assert '"request.applicant_authenticated"' not in audit(station)


def test_the_last_pin_try_ends_the_request(station, icam_profile, crl_cache, token):
    """The station will not spend the card's last PIN try; the request cannot go on."""
    eng = engine(station, icam_profile, crl_cache)
    target = open_target(token)
    request_id = opened_and_approved(eng, target)
    image = load_card_image(GOLDEN, pin=TEST_PIN)
    image.set_pin_tries(1)
    with pytest.raises(IssuanceRefused) as info:
        eng.complete(request_id, PivSession(VirtualConnection(image)), target, registrar="reg")
    assert info.value.code == "pin-last-try" and eng.state(request_id) == "failed" and image.pin_tries == 1


def test_the_limit_is_checked_again_when_the_request_goes_on(station, icam_profile, crl_cache, token):
    """Two requests opened while the applicant held nothing; the first is issued; the second
    would pass the limit and ends failed."""
    eng = IssuanceEngine(station, icam_profile.with_revocation("crl"), Script(), crl_cache=crl_cache, max_active_per_applicant=1)
    first, second = open_target(token), open_target(init_softhsm_token(f"dpiv-{uuid.uuid4().hex[:8]}", "55667788"))
    one, two = opened_and_approved(eng, first), opened_and_approved(eng, second)
    assert eng.complete(one, card(), first, registrar="reg").state == "issued"
    with pytest.raises(IssuanceRefused) as info:
        eng.complete(two, card(), second, registrar="reg")
    assert info.value.code == "limits.active_credentials" and eng.state(two) == "failed"
    assert rows(station, "SELECT count(*) FROM credentials") == [(1,)]


def test_a_reissued_card_of_an_operator_is_refused_as_applicant(station, icam_profile, crl_cache, token):
    """Operator enrolled with card 46; the applicant brings card 46 re-issued (ICI 8): another
    certificate, card UUID and FASC-N, but the same person identifier."""
    auth = x509.load_pem_x509_certificate((GOLDEN / "3 - ICAM_PIV_Auth_SP_800-73-4.crt").read_bytes())
    add_operator(station, "op46", display_name="Operator with card 46", roles=[Role.REGISTRAR], auth_method=AuthMethod.PIV,
                 auth_reference=auth.fingerprint(hashes.SHA256()).hex(), actor="admin",
                 card_fascn="D13810D828AF2C1084246DA1685828AF0210848D84E739C3EB", card_uuid="94e28c68-84db-44db-8a0e-f502d6689b14")
    eng = engine(station, icam_profile, crl_cache)
    with pytest.raises(IssuanceRefused) as info:
        eng.open_request(card(CARDS / "46_Golden_FIPS_201-2_PIV_ICI_8"), registrar="reg", aal="AAL2", target=open_target(token))
    assert info.value.code == "separation.applicant_is_operator" and "op46" in str(info.value)


def fascn(**fields) -> FascN:
    card46 = dict(agency_code="4700", system_code="0257", credential_number="000046", credential_series="1",
                  individual_credential_issue="1", person_identifier="0257000046", organizational_category="1",
                  organizational_identifier="9999", association_category="1")
    return FascN(**{**card46, **fields})


def test_same_person_by_credential_or_person_identifier():
    card = fascn()
    assert _same_person(card, fascn(individual_credential_issue="8"))  # the card re-issued
    assert _same_person(card, fascn(system_code="0300", credential_number="000999"))  # a new card, same PI in the same organization
    assert not _same_person(card, fascn(credential_number="000047", person_identifier="0257000047"))  # someone else
    assert not _same_person(card, fascn(credential_number="000047", organizational_identifier="4700"))  # PI of another organization
    assert not _same_person(fascn(credential_number="000001", person_identifier="0000000000"),
                            fascn(credential_number="000002", person_identifier="0000000000"))  # no PI is nobody
    assert not _same_person(fascn(agency_code="9999"), fascn(agency_code="9999"))  # PIV-I: the FASC-N names no one


# --- section 4: the request's own device, a whole key pair, a signing-only key ------------------------------

def test_resume_onto_another_token_is_refused(station, icam_profile, crl_cache, token):
    dying = DiesAfterGenerating(token)
    request_id = issue_until_the_crash(station, icam_profile, crl_cache, dying)
    other_uri = init_softhsm_token(f"dpiv-{uuid.uuid4().hex[:8]}", "55667788")
    other = open_target(other_uri)
    with pytest.raises(IssuanceRefused) as info:
        engine(station, icam_profile, crl_cache).complete(request_id, card(), other, registrar="reg")
    assert info.value.code == "issuance.other_target" and "issuance.other_target" in refusals(station)
    assert other.locate_credential() is None
    session = other.token.token.open(user_pin="55667788")  # its PIN is still the transport PIN, and it holds nothing
    try:
        assert list(session.get_objects({})) == []
    finally:
        session.close()


@pytest.mark.parametrize("lost", [ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY], ids=["private-lost", "public-lost"])
def test_half_a_key_pair_is_made_again(lost, station, icam_profile, crl_cache, token):
    """Killed while the token stored the pair: one half is there, the other is not. The
    resumed request generates the pair again (recorded) and is issued for the new key."""
    dying = DiesAfterGenerating(token)
    request_id = issue_until_the_crash(station, icam_profile, crl_cache, dying)
    half = dying.public_key
    dying.close()
    session = dying.token.token.open(user_pin="55667788", rw=True)
    try:
        session.get_key(lost, id=dying.key_id).destroy()
    finally:
        session.close()
    resumed = open_target(token)
    outcome = engine(station, icam_profile, crl_cache).complete(request_id, card(), resumed, registrar="reg")
    assert outcome.state == "issued" and outcome.certificate.public_key() != half
    (made,) = rows(station, "SELECT json_extract(details, '$.public_key_sha256') FROM audit_events WHERE action = 'target.key_generated'")
    assert made == (records.public_key_sha256(outcome.certificate.public_key()),)  # the new pair is on record
    session = resumed.token.token.open(user_pin=NEW_PIN)
    try:
        (private,) = session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})
        (public,) = session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY})
        assert private[Attribute.DERIVE] is False  # its certificate allows signatures only
        assert private[Attribute.ID] == public[Attribute.ID]
    finally:
        session.close()


def test_a_self_approval_in_issue_ends_the_request(station, icam_profile, crl_cache, token):
    eng = engine(station, icam_profile, crl_cache)
    with pytest.raises(IssuanceRefused) as info:
        eng.issue(card(), registrar="sup", approver="sup", aal="AAL2", target=open_target(token))
    assert info.value.code == "issuance.separation_of_duties" and eng.state(1) == "failed"


def test_a_credential_revoked_in_the_records_alone_still_counts_for_the_limit(station, icam_profile, crl_cache, token):
    """`UPDATE credentials SET status='revoked'` does not free a place under the limit: the
    engine counts the credentials the audit chain has active."""
    eng = IssuanceEngine(station, icam_profile.with_revocation("crl"), Script(), crl_cache=crl_cache, max_active_per_applicant=1)
    assert eng.issue(card(), registrar="reg", approver="sup", aal="AAL2", target=open_target(token)).state == "issued"
    tamper(station, "UPDATE credentials SET status = 'revoked'")
    second = open_target(init_softhsm_token(f"dpiv-{uuid.uuid4().hex[:8]}", "55667788"))
    with pytest.raises(IssuanceRefused) as info:
        eng.open_request(card(), registrar="reg", aal="AAL2", target=second)
    assert info.value.code == "limits.active_credentials"


class DiesAtDelivery(Pkcs11Target):
    def install_certificate(self, certificate, chain):
        raise Crash()


def test_an_ended_request_revokes_its_credential_whatever_the_row_says(station, icam_profile, crl_cache, token):
    """A request with its certificate issued is cancelled after its credential row was marked
    revoked behind the station's back: the chain has it active, so it is revoked for real
    (a credential.revoked event, and on the next CRL)."""
    from station.service.revocation import publish_crl

    dying = DiesAtDelivery(token)
    eng = engine(station, icam_profile, crl_cache)
    request_id = opened_and_approved(eng, dying)
    with pytest.raises(Crash):
        eng.complete(request_id, card(), dying, registrar="reg")
    assert eng.state(request_id) == "key_generated"
    ((serial,),) = rows(station, "SELECT serial FROM credentials")
    tamper(station, "UPDATE credentials SET status = 'revoked'")
    eng.cancel(request_id, actor="sup", reason="the applicant left")
    assert rows(station, "SELECT count(*) FROM audit_events WHERE action = 'credential.revoked' AND object_id = :s", s=serial) == [(1,)]
    assert int(serial, 16) in {entry.serial_number for entry in publish_crl(station, actor="sup")}
