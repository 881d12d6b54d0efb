"""Issuing through the service API: request rules, idempotency, one transaction (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select

from .ca_helpers import APPROVER, REGISTRAR, approved_request, csr, ensure_operators, issue, new_key
from station.audit.chain import SensitiveDataInEvent
from station.audit.verify import verify_chain
from station.ca import ca_store
from station.ca.profile import CsrProof
from station.records.models import AuditEvent, Credential, IssuanceRequest
from station.terms import RequestState
from station.service import issuance
from station.service.issuance import IssuanceError
from station.service.operators import OperatorError


def count(station, model, *where):
    with station.db.transaction() as s:
        return s.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def test_issue_records_credential_and_event(station, pki):
    issued, key, piv, req = issue(station, pki)
    assert not issued.already_issued
    issued.certificate.verify_directly_issued_by(station.ca.certificate)
    with station.db.transaction() as s:
        cred = s.execute(select(Credential).where(Credential.serial == issued.serial)).scalar_one()
        assert cred.certificate == issued.certificate.public_bytes(serialization.Encoding.DER)
        assert cred.policy == "2.16.840.1.101.3.2.1.3.40"
        assert cred.status == "active"
        assert cred.piv_auth_certificate.fingerprint == issuance.fingerprint(piv)
        assert s.get(IssuanceRequest, req).state == RequestState.ISSUED.value
        ev = s.execute(select(AuditEvent).where(AuditEvent.action == "credential.issued")).scalar_one()
        assert ev.object_id == issued.serial
        assert verify_chain(s, ca_store.load_audit_public_key(station.home)).ok


def test_asking_twice_returns_the_same_certificate(station, pki):
    key = new_key()
    req = approved_request(station, pki.piv_auth())
    first = issuance.issue_certificate(station, req, CsrProof(csr(key)), actor=REGISTRAR)
    # a second, freshly signed CSR for the same key: same answer
    second = issuance.issue_certificate(station, req, CsrProof(csr(key)), actor=REGISTRAR)
    assert second.already_issued and not first.already_issued
    assert second.serial == first.serial
    assert second.certificate == first.certificate
    assert count(station, Credential, Credential.request_id == req) == 1
    assert count(station, AuditEvent, AuditEvent.action == "credential.issued") == 1


def test_a_second_key_for_an_issued_request_is_refused(station, pki):
    issued, _, _, req = issue(station, pki)
    with pytest.raises(IssuanceError) as err:
        issuance.issue_certificate(station, req, CsrProof(csr(new_key())), actor=REGISTRAR)
    assert err.value.code == "issuance.already_issued"
    assert issued.serial in str(err.value)


def test_unapproved_request_is_not_issued(station, pki):
    ensure_operators(station)
    _, pac = issuance.record_applicant(station, pki.piv_auth(), actor=REGISTRAR)
    req = issuance.open_request(station, pac, aal="AAL2", target_kind="software", registrar=REGISTRAR)
    with pytest.raises(IssuanceError) as err:
        issuance.issue_certificate(station, req, CsrProof(csr(new_key())), actor=REGISTRAR)
    assert err.value.code == "issuance.state"
    assert count(station, Credential) == 0


def test_registrar_cannot_approve_own_request(station, pki):
    from station.terms import AuthMethod, Role
    from station.service.operators import add_operator

    add_operator(station, "both@station.test", display_name="Both", roles=[Role.REGISTRAR, Role.SUPERVISOR], auth_method=AuthMethod.PIV, actor="t")
    _, pac = issuance.record_applicant(station, pki.piv_auth(), actor="t")
    req = issuance.open_request(station, pac, aal="AAL2", target_kind="software", registrar="both@station.test")
    with pytest.raises(IssuanceError) as err:
        issuance.approve_request(station, req, approver="both@station.test")
    assert err.value.code == "issuance.separation_of_duties"


def test_approver_needs_the_role(station, pki):
    ensure_operators(station)
    _, pac = issuance.record_applicant(station, pki.piv_auth(), actor=REGISTRAR)
    req = issuance.open_request(station, pac, aal="AAL2", target_kind="software", registrar=REGISTRAR)
    with pytest.raises(OperatorError):
        issuance.approve_request(station, req, approver=REGISTRAR)
    issuance.approve_request(station, req, approver=APPROVER)


def test_arguments_must_match_the_request(station, pki):
    piv = pki.piv_auth()
    req = approved_request(station, piv, aal="AAL2", target="software")
    proof = CsrProof(csr(new_key()))
    with pytest.raises(IssuanceError):
        issuance.issue_certificate(station, req, proof, actor=REGISTRAR, aal="AAL3", target_kind="smart-card")
    with pytest.raises(IssuanceError):
        issuance.issue_certificate(station, req, proof, actor=REGISTRAR, applicant_piv_auth_cert=pki.piv_auth())
    ok = issuance.issue_certificate(station, req, proof, actor=REGISTRAR, applicant_piv_auth_cert=piv, aal="AAL2", target_kind="software")
    assert ok.certificate.subject == piv.subject


def test_credential_and_audit_event_commit_together(station, pki):
    """An event that cannot be written (it would hold a private key) rolls the credential back."""
    req = approved_request(station, pki.piv_auth())
    key = new_key()
    leaked = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    events_before = count(station, AuditEvent)
    with pytest.raises(SensitiveDataInEvent):
        issuance.issue_certificate(station, req, CsrProof(csr(key)), actor=REGISTRAR, target_device=leaked)
    assert count(station, Credential) == 0
    assert count(station, AuditEvent) == events_before
    with station.db.transaction() as s:
        assert s.get(IssuanceRequest, req).state == RequestState.APPROVED.value
    # and the request can still be issued properly afterwards
    done = issuance.issue_certificate(station, req, CsrProof(csr(key)), actor=REGISTRAR, target_device="YubiKey 5 NFC #123")
    assert isinstance(done.certificate, x509.Certificate)


def test_smart_card_aal3_issue(station, pki):
    issued, *_ = issue(station, pki, aal="AAL3", target="smart-card", key_kind="RSA-2048")
    policies = issued.certificate.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in policies] == ["2.16.840.1.101.3.2.1.3.41"]


def test_identity_check_older_than_90_days_is_not_issued(station, pki):
    import datetime as dt

    req = approved_request(station, pki.piv_auth())
    with station.db.transaction() as s:
        s.get(IssuanceRequest, req).created_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=91)
    with pytest.raises(IssuanceError) as err:
        issuance.issue_certificate(station, req, CsrProof(csr(new_key())), actor=REGISTRAR)
    assert err.value.code == "issuance.stale"


def test_rejected_request_is_not_issued(station, pki):
    ensure_operators(station)
    _, pac = issuance.record_applicant(station, pki.piv_auth(), actor=REGISTRAR)
    req = issuance.open_request(station, pac, aal="AAL2", target_kind="software", registrar=REGISTRAR)
    issuance.decide_request(station, req, approver=APPROVER, approve=False)
    with pytest.raises(IssuanceError):
        issuance.issue_certificate(station, req, CsrProof(csr(new_key())), actor=REGISTRAR)
    with pytest.raises(IssuanceError):
        issuance.approve_request(station, req, approver=APPROVER)  # decided once
    with station.db.transaction() as s:
        assert s.get(IssuanceRequest, req).state == RequestState.REJECTED.value


def test_applicant_is_found_again_by_cardholder_uuid_or_certificate(station, pki):
    holder = "8c2f2c1e-1b7a-4f27-9d4e-0c3bb7b6a001"
    first_card, new_card = pki.piv_auth(), pki.piv_auth()
    a1, p1 = issuance.record_applicant(station, first_card, actor=REGISTRAR, cardholder_uuid=holder, fascn="aa" * 25)
    assert issuance.record_applicant(station, first_card, actor=REGISTRAR) == (a1, p1)  # same certificate
    a2, p2 = issuance.record_applicant(station, new_card, actor=REGISTRAR, cardholder_uuid=holder, fascn="bb" * 25)
    assert a2 == a1 and p2 != p1  # a new card of the same person: one applicant, two PIV Auth certificates
    a3, _ = issuance.record_applicant(station, pki.piv_auth(), actor=REGISTRAR, cardholder_uuid="another")
    assert a3 != a1


def test_issuing_inside_a_longer_workflow(station, pki):
    """The workflow engine issues in authenticated -> key_generated (docs/issuance.md)."""
    req = approved_request(station, pki.piv_auth())
    key = new_key()
    with pytest.raises(IssuanceError):  # approved, not yet authenticated
        issuance.issue_certificate(station, req, CsrProof(csr(key)), actor=REGISTRAR,
                                   from_state=RequestState.AUTHENTICATED, to_state=RequestState.KEY_GENERATED)  # fmt: skip
    with station.db.transaction() as s:  # the engine's PKI-AUTH step: the state with its audit event
        issuance.locked_request(s, req).state = RequestState.AUTHENTICATED.value
        station.audit.append(s, actor=REGISTRAR, action="request.applicant_authenticated", object_type="request", object_id=req)
    first = issuance.issue_certificate(station, req, CsrProof(csr(key)), actor=REGISTRAR,
                                       from_state=RequestState.AUTHENTICATED, to_state=RequestState.KEY_GENERATED)  # fmt: skip
    with station.db.transaction() as s:
        assert issuance.locked_request(s, req).state == RequestState.KEY_GENERATED.value
    again = issuance.issue_certificate(station, req, CsrProof(csr(key)), actor=REGISTRAR,
                                       from_state=RequestState.AUTHENTICATED, to_state=RequestState.KEY_GENERATED)  # fmt: skip
    assert again.already_issued and again.certificate == first.certificate


def test_step_facts_read_the_request_its_operators_and_the_chain(station, pki):
    """The engine's step facts (one locked, joined query on both databases): the approver from
    the chain, the acting registrar's and the approver's roles, and a row the chain does not back."""
    from station.service import requests
    from station.service.operators import disable_operator

    req = approved_request(station, pki.piv_auth(), aal="AAL2", target="software")
    facts = requests.step_facts(station, req, REGISTRAR)
    assert (facts.state, facts.approver, facts.unbacked) == (RequestState.APPROVED.value, APPROVER, None)
    assert facts.actor_not_registrar is None and facts.approver_not_supervisor is None
    assert requests.step_facts(station, req, APPROVER).actor_not_registrar.code == "operator.role"
    disable_operator(station, APPROVER, actor="t")
    assert requests.step_facts(station, req, REGISTRAR).approver_not_supervisor.code == "operator.unknown"
    with station.db.transaction() as s:
        s.execute(IssuanceRequest.__table__.update().where(IssuanceRequest.id == req).values(state="activated"))
    unbacked = requests.step_facts(station, req, REGISTRAR).unbacked
    assert unbacked.code == "audit.unbacked" and "state 'activated' has no credential.activated event" in str(unbacked)
    with pytest.raises(IssuanceError) as unknown:
        requests.step_facts(station, req + 1000, REGISTRAR)
    assert unknown.value.code == "issuance.unknown_request"
