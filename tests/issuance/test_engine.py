"""The issuance engine end to end (in process): golden GSA card -> SoftHSM token -> issued;
and the refusals, each audited, nothing issued."""

from __future__ import annotations

import io
import sqlite3
import uuid

import pytest
from cryptography import x509
from pkcs11 import Attribute, ObjectClass
from sqlalchemy import text

from station.audit.export import export_jsonl
from station.devices.piv import PivSession
from station.devices.virtual import VirtualConnection, load_card_image
from station.issuance.engine import IssuanceEngine, IssuanceRefused
from station.issuance.interaction import ApprovalDecision
from station.issuance.targets import open_target
from station.issuance.targets.pkcs11 import Pkcs11Target
from station.terms import AuthMethod, Role
from station.service.operators import add_operator
from tests.issuance.people import SECRETS, add_password_operators
from tests.conftest import CARDS, GOLDEN, TEST_PIN, init_softhsm_token


NEW_PIN = "k9Pz4mQ1"
AAL2, AAL3 = "2.16.840.1.101.3.2.1.3.40", "2.16.840.1.101.3.2.1.3.41"


class Script:
    """A scripted person at the station."""

    def __init__(self, new_pin=NEW_PIN, photo_ok=True):
        self.new_pin, self.photo_ok, self.seen = new_pin, photo_ok, []

    def request_pin(self, *, pin_kind, tries_left):
        self.seen.append(("pin", pin_kind))
        return self.new_pin if pin_kind == "credential" else TEST_PIN

    def request_new_pin(self):
        return self.new_pin, self.new_pin

    def confirm_photo(self, facial_image, subject):
        self.seen.append(("photo", bool(facial_image)))
        return self.photo_ok

    def operator_secret(self, operator, purpose):
        return SECRETS[operator]

    def approve_request(self, summary):
        return ApprovalDecision(True)

    def progress(self, event):
        self.seen.append(("progress", event))


@pytest.fixture
def station(sqlite_station):
    return add_password_operators(sqlite_station, supervisor_roles=(Role.SUPERVISOR, Role.REGISTRAR))


@pytest.fixture
def token(softhsm_conf):
    return init_softhsm_token(f"dpiv-{uuid.uuid4().hex[:8]}", "55667788")


def engine(station, icam_profile, crl_cache, script=None):
    return IssuanceEngine(station, icam_profile.with_revocation("crl"), script or Script(), crl_cache=crl_cache)


def card(name=GOLDEN):
    return PivSession(VirtualConnection(load_card_image(name, pin=TEST_PIN)))


def rows(station, sql: str, **params) -> list[tuple]:
    with station.db.transaction() as session:
        return [tuple(row) for row in session.execute(text(sql), params)]


def tamper(station, sql: str, **params) -> None:
    """A change behind the station's back: straight into the SQLite file, no audit event."""
    db = sqlite3.connect(station.db.engine.url.database)
    with db:
        db.execute(sql, params)
    db.close()


def audit(station) -> str:
    out = io.StringIO()
    with station.db.transaction() as session:
        export_jsonl(session, out)
    return out.getvalue()


def test_golden_card_to_softhsm_token_issued(station, icam_profile, crl_cache, token):
    script = Script()
    eng = engine(station, icam_profile, crl_cache, script)
    target = open_target(token)
    applicant = card()
    request_id = eng.open_request(applicant, registrar="reg", aal="AAL2", target=target)
    eng.approve(request_id, approver="sup")
    outcome = eng.complete(request_id, applicant, target, registrar="reg")
    assert outcome.state == "issued" and outcome.selftest.passed
    cert = outcome.certificate
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in policies] == [AAL2]
    assert target.installed_certificate() == cert
    states = [event.state for kind, event in script.seen if kind == "progress" and event.state]
    assert states == ["requested", "approved", "authenticated", "key_generated", "delivered", "activated", "issued"]
    events = [event for kind, event in script.seen if kind == "progress"]
    started = [(event.step.value, event.substep) for event in events if event.substep]  # told before the work, in order
    assert started == [("request", "reading the card"), ("request", "checking the certificate"), ("pki-auth", "reading the card"),
                       ("pki-auth", "PIN"), ("pki-auth", "reading protected objects"), ("pki-auth", "checking revocation"),
                       ("pki-auth", "challenge"), ("key-generation", "generating the key"), ("key-generation", "certifying the key"),
                       ("delivery", "writing the certificate"), ("activation", "setting the PIN"), ("self-test", "signing a test challenge")]
    assert not any(event.state for event in events if event.substep)  # a state only once its transition is committed
    assert all(event.request_id == request_id for event in events[2:])
    fractions = [event.fraction for event in events if event.step.value == "pki-auth" and event.substep]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] < 1.0
    told_pin = script.seen.index(("progress", next(event for event in events if event.substep == "PIN")))
    assert ("pin", "application") in script.seen[told_pin:] and ("pin", "application") not in script.seen[:told_pin]
    text = audit(station)
    for action in ("request.opened", "request.approved", "request.applicant_authenticated", "credential.issued",
                   "credential.delivered", "credential.activated", "request.issued"):
        assert f'"{action}"' in text
    assert TEST_PIN not in text and NEW_PIN not in text and SECRETS["reg"] not in text


def test_registrar_cannot_approve_own_request(station, icam_profile, crl_cache, token):
    eng = engine(station, icam_profile, crl_cache)
    request_id = eng.open_request(card(), registrar="sup", aal="AAL2", target=open_target(token))
    with pytest.raises(IssuanceRefused) as info:
        eng.approve(request_id, approver="sup")
    assert info.value.code == "issuance.separation_of_duties" and eng.state(request_id) == "requested"
    assert '"issuance.separation_of_duties"' in audit(station)


def test_aal3_onto_softhsm_refused(station, icam_profile, crl_cache, token):
    eng = engine(station, icam_profile, crl_cache)
    with pytest.raises(IssuanceRefused) as info:
        eng.open_request(card(), registrar="reg", aal="AAL3", target=open_target(token))
    assert info.value.code == "assurance.aal3_needs_hardware" and '"assurance.aal3_needs_hardware"' in audit(station)


def test_rejected_card_refused(station, icam_profile, crl_cache, token):
    eng = engine(station, icam_profile, crl_cache)
    with pytest.raises(IssuanceRefused) as info:
        eng.open_request(card(CARDS / "24_Revoked_Certificates"), registrar="reg", aal="AAL2", target=open_target(token))
    assert info.value.code in {"cert-revoked", "cert-invalid"} and '"issuance.refused"' in audit(station)


def test_weak_new_pin_refused_before_anything_is_issued(station, icam_profile, crl_cache, token):
    """The new PIN's policy is checked before the key is generated: no key, no certificate."""
    eng = engine(station, icam_profile, crl_cache, Script(new_pin="123456"))
    target = open_target(token)
    applicant = card()
    request_id = eng.open_request(applicant, registrar="reg", aal="AAL2", target=target)
    eng.approve(request_id, approver="sup")
    with pytest.raises(IssuanceRefused) as info:
        eng.complete(request_id, applicant, target, registrar="reg")
    assert info.value.code == "weak-pin" and eng.state(request_id) == "authenticated"
    text = audit(station)
    assert '"target.key_planned"' not in text and '"credential.issued"' not in text and '"weak-pin"' in text
    assert open_target(token).locate_credential() is None


def test_a_failed_issue_leaves_no_request_to_resume(station, icam_profile, crl_cache, token):
    """`issue` in one go: a weak PIN (or any refusal part way) ends the request failed."""
    eng = engine(station, icam_profile, crl_cache, Script(new_pin="123456"))
    with pytest.raises(IssuanceRefused) as info:
        eng.issue(card(), registrar="reg", approver="sup", aal="AAL2", target=open_target(token))
    assert info.value.code == "weak-pin" and eng.state(1) == "failed"
    assert '"request.failed"' in audit(station) and '"credential.issued"' not in audit(station)


def test_a_wrong_token_pin_ends_the_request_and_revokes_its_certificate(station, icam_profile, crl_cache, token):
    """The certificate was issued and installed, then the token refused its transport PIN at
    activation: the request ends failed and its certificate is revoked, not left active."""
    eng = engine(station, icam_profile, crl_cache)
    target = open_target(token)
    install = target.install_certificate

    def install_then_the_pin_changes(certificate, chain):
        install(certificate, chain)
        target.token.change_pin("55667788", "99887766")  # the transport PIN given is no longer the token's

    target.install_certificate = install_then_the_pin_changes
    with pytest.raises(IssuanceRefused) as info:
        eng.issue(card(), registrar="reg", approver="sup", aal="AAL2", target=target)
    assert info.value.code == "activation.transport_secret" and eng.state(1) == "failed"
    assert rows(station, "SELECT status FROM credentials") == [("revoked",)]
    assert '"credential.revoked"' in audit(station)


def test_applicant_who_is_an_operator_refused(station, icam_profile, crl_cache, token):
    from cryptography.hazmat.primitives import hashes

    auth = x509.load_pem_x509_certificate((GOLDEN / "3 - ICAM_PIV_Auth_SP_800-73-4.crt").read_bytes())
    add_operator(station, "card-holder", display_name="Operator with the golden card", roles=[Role.REGISTRAR],
                 auth_method=AuthMethod.PIV, auth_reference=auth.fingerprint(hashes.SHA256()).hex(), actor="admin")
    eng = engine(station, icam_profile, crl_cache)
    with pytest.raises(IssuanceRefused) as info:
        eng.open_request(card(), registrar="reg", aal="AAL2", target=open_target(token))
    assert info.value.code == "separation.applicant_is_operator"


class ProbeCountingTarget(Pkcs11Target):
    """Records every probe of a PIN that may be wrong (each one would spend a token PIN try)."""

    def __init__(self, uri):
        super().__init__(uri)
        self.probes = 0

    def activation_secret_set(self, new_pin):
        self.probes += 1
        return super().activation_secret_set(new_pin)


def test_activation_spends_no_pin_try(station, icam_profile, crl_cache, token):
    eng = engine(station, icam_profile, crl_cache)
    target = ProbeCountingTarget(token)
    applicant = card()
    request_id = eng.open_request(applicant, registrar="reg", aal="AAL2", target=target)
    eng.approve(request_id, approver="sup")
    assert eng.complete(request_id, applicant, target, registrar="reg").state == "issued"
    assert target.probes == 0


def test_activation_after_a_crash_finds_the_pin_already_set(station, icam_profile, crl_cache, token):
    """C_SetPIN happened but the crash came before the state was recorded: the transport PIN is
    refused, one probe finds the new PIN in place, activation is recorded without a second C_SetPIN."""
    eng = engine(station, icam_profile, crl_cache)
    target = ProbeCountingTarget(token)
    applicant = card()
    request_id = eng.open_request(applicant, registrar="reg", aal="AAL2", target=target)
    eng.approve(request_id, approver="sup")
    eng.authenticate_applicant(request_id, applicant, registrar="reg")
    eng.generate(request_id, target, registrar="reg")
    eng.deliver(request_id, target, registrar="reg")
    target.token.change_pin("55667788", NEW_PIN)  # the crash happened right after C_SetPIN
    eng.activate(request_id, target, registrar="reg")
    assert eng.state(request_id) == "activated" and target.probes == 1
    assert eng.verify(request_id, target, registrar="reg").passed


def test_resume_without_the_applicants_card_is_refused(station, icam_profile, crl_cache, token):
    eng = engine(station, icam_profile, crl_cache)
    target = open_target(token)
    request_id = eng.open_request(card(), registrar="reg", aal="AAL2", target=target)
    eng.approve(request_id, approver="sup")
    with pytest.raises(IssuanceRefused) as info:
        eng.complete(request_id, None, target, registrar="reg")
    assert info.value.code == "issuance.card_needed" and eng.state(request_id) == "approved"


class CancelledMeanwhile(Pkcs11Target):
    """Another operator cancels the request while the token generates the key."""

    def __init__(self, uri, cancel_request):
        super().__init__(uri)
        self.cancel_request = cancel_request  # not `cancel`: that is the target's cancel token

    def generate_key(self, algorithm):
        public_key = super().generate_key(algorithm)
        self.cancel_request()
        return public_key


def test_a_request_cancelled_during_key_generation_gets_no_certificate(station, icam_profile, crl_cache, token):
    """The engine read the request once; its transitions still compare-and-set the state."""
    eng, other = engine(station, icam_profile, crl_cache), engine(station, icam_profile, crl_cache)
    target = CancelledMeanwhile(token, lambda: other.cancel(request_id, actor="sup", reason="the applicant left"))
    applicant = card()
    request_id = eng.open_request(applicant, registrar="reg", aal="AAL2", target=target)
    eng.approve(request_id, approver="sup")
    with pytest.raises(IssuanceRefused) as info:
        eng.complete(request_id, applicant, target, registrar="reg")
    assert info.value.code == "issuance.state" and "cancelled" in str(info.value)
    assert eng.state(request_id) == "cancelled"
    text = audit(station)
    assert '"request.cancelled"' in text and '"target.key_generated"' not in text and '"credential.issued"' not in text
    assert target.installed_certificate() is None


class Crash(BaseException):
    """The process dying (not an error the engine could handle)."""


class DiesAfterGenerating(Pkcs11Target):
    def generate_key(self, algorithm):
        super().generate_key(algorithm)
        raise Crash()


def issue_until_the_crash(station, icam_profile, crl_cache, dying) -> int:
    eng = engine(station, icam_profile, crl_cache)
    applicant = card()
    request_id = eng.open_request(applicant, registrar="reg", aal="AAL2", target=dying)
    eng.approve(request_id, approver="sup")
    with pytest.raises(Crash):
        eng.complete(request_id, applicant, dying, registrar="reg")
    assert eng.state(request_id) == "authenticated"
    return request_id


def test_a_crash_right_after_key_generation_resumes_with_that_key(station, icam_profile, crl_cache, token):
    """The key's CKA_ID was recorded before the token made it: the resumed request finds that
    key (no stray second key on the token) and is issued for it."""
    dying = DiesAfterGenerating(token)
    request_id = issue_until_the_crash(station, icam_profile, crl_cache, dying)
    made = dying.public_key
    resumed_target = open_target(token)
    outcome = engine(station, icam_profile, crl_cache).complete(request_id, card(), resumed_target, registrar="reg")
    assert outcome.state == "issued" and outcome.certificate.public_key() == made
    text = audit(station)
    assert text.count('"target.key_planned"') == 1 and text.count('"target.key_generated"') == 1
    keys = resumed_target.token.token.open(user_pin=NEW_PIN)
    try:
        assert len(list(keys.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))) == 1
    finally:
        keys.close()


class DiesBeforeTheRequest(Pkcs11Target):
    def proof_of_possession(self, subject):
        raise Crash()


def test_a_key_wiped_from_the_token_before_certification_is_made_again_and_recorded(
        station, icam_profile, crl_cache, token):
    dying = DiesBeforeTheRequest(token)
    request_id = issue_until_the_crash(station, icam_profile, crl_cache, dying)  # key made and recorded, then the crash
    first = dying.public_key
    dying.close()
    session = dying.token.token.open(user_pin="55667788", rw=True)
    try:
        for obj in list(session.get_objects({Attribute.ID: dying.key_id})):
            obj.destroy()  # someone wiped the key off the token meanwhile
    finally:
        session.close()
    outcome = engine(station, icam_profile, crl_cache).complete(request_id, card(), open_target(token), registrar="reg")
    assert outcome.state == "issued" and outcome.certificate.public_key() != first
    assert audit(station).count('"target.key_generated"') == 2  # the new key is on record too


def test_the_active_credential_limit_counts_the_person_not_the_card(station, icam_profile, crl_cache, token):
    """The applicant comes back with a re-issued PIV card (another PIV Authentication
    certificate, same cardholder): their credential issued under the old card still counts."""
    eng = IssuanceEngine(station, icam_profile.with_revocation("crl"), Script(), crl_cache=crl_cache, max_active_per_applicant=1)
    applicant = card()
    assert eng.issue(applicant, registrar="reg", approver="sup", aal="AAL2", target=open_target(token)).state == "issued"
    tamper(station, "UPDATE piv_auth_certificates SET fingerprint = :old", old="00" * 32)  # issued under a previous card
    second = open_target(init_softhsm_token(f"dpiv-{uuid.uuid4().hex[:8]}", "55667788"))
    with pytest.raises(IssuanceRefused) as info:
        eng.open_request(card(), registrar="reg", aal="AAL2", target=second)
    assert info.value.code == "limits.active_credentials"
    assert '"limits.active_credentials"' in audit(station)  # the refusal is audited, naming the rule
