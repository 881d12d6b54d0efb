"""Tampering with the records behind the station's back (raw SQL on SQLite and PostgreSQL):
``station audit verify`` names each row the audit chain does not back, and the station does
not act on such a row (issue 9, "the database is not the authority")."""

from __future__ import annotations

import os
import uuid

import pytest
from cryptography import x509
from sqlalchemy import select, text

from station.audit.backing import RecordNotBacked, audited_request, disagreement, require_backed
from station.cli import main
from station.records.models import Credential, IssuanceRequest, Operator
from station.service import issuance, lifecycle, operators, revocation
from station.service.revocation import RevocationError

from .ca_helpers import APPROVER, REGISTRAR, ensure_operators, issue


def sql(station, statement, **params):
    with station.db.transaction() as s:
        s.execute(text(statement), params)


def audit_verify(station, capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main(["audit", "verify", "--home", str(station.home.root), "--db", station.db.engine.url.render_as_string(hide_password=False)])
    captured = capsys.readouterr()
    return code, (captured.out + captured.err).splitlines()


def row_lines(lines: list[str], prefix: str) -> list[str]:
    return [line for line in lines if line.startswith(prefix)]


def load(station, model, **where):
    with station.db.transaction() as s:
        return s.execute(select(model).filter_by(**where)).scalar_one()


def backed(station, model, **where) -> str | None:
    with station.db.transaction() as s:
        return disagreement(s, s.execute(select(model).filter_by(**where)).scalar_one())


def open_request(station, pki) -> int:
    ensure_operators(station)
    _, pac = issuance.record_applicant(station, pki.piv_auth(), actor=REGISTRAR, fascn=os.urandom(25).hex(), cardholder_uuid=str(uuid.uuid4()))
    return issuance.open_request(station, pac, aal="AAL2", target_kind="software", registrar=REGISTRAR)


def test_untouched_records_verify_intact(station, pki, capsys):
    """No false alarm: issued, revoked, rejected, cancelled-by-revocation and disabled rows all agree."""
    issued, *_ = issue(station, pki)
    revoked, *_ = issue(station, pki)
    revocation.revoke(station, revoked.serial, "keyCompromise", actor="admin")
    issuance.decide_request(station, open_request(station, pki), approver=APPROVER, approve=False)
    open_request(station, pki)
    operators.add_operator(station, "leaver", display_name="L", roles=[operators.Role.AUDITOR], auth_method="piv", actor="admin")
    operators.disable_operator(station, "leaver", actor="admin")
    code, lines = audit_verify(station, capsys)
    assert code == 0, lines
    assert lines[0].startswith("audit trail intact")
    assert backed(station, Credential, serial=issued.serial) is None


def test_revoked_credential_set_active_stays_on_the_crl(station, pki, capsys, tmp_path):
    revoked, *_ = issue(station, pki)
    kept, *_ = issue(station, pki)
    revocation.revoke(station, revoked.serial, "keyCompromise", actor="admin")
    sql(station, "UPDATE credentials SET status = 'active', revocation_reason = NULL, revoked_at = NULL WHERE serial = :s", s=revoked.serial)

    crl = revocation.publish_crl(station, actor="admin", out=tmp_path / "next.crl")
    entry = crl.get_revoked_certificate_by_serial_number(revoked.certificate.serial_number)
    assert entry is not None  # built from the audited revocation, not the status column
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    assert crl.get_revoked_certificate_by_serial_number(kept.certificate.serial_number) is None

    cred_id = load(station, Credential, serial=revoked.serial).id
    code, lines = audit_verify(station, capsys)
    assert code == 1
    (line,) = row_lines(lines, "credentials ")
    assert line.startswith(f"credentials {cred_id}: status 'active'") and "the audit trail revoked it at event" in line
    assert not any("intact" in line for line in lines)

    # the station does not take it for active: not listed as active, no second revocation, no
    # revocation as the applicant's
    assert revocation.show_credential(station, revoked.serial).status == "revoked"
    assert revoked.serial not in {c.serial for c in revocation.list_credentials(station, status="active")}
    with pytest.raises(RevocationError) as err:
        revocation.revoke(station, revoked.serial, "superseded", actor="admin")
    assert err.value.code == "revocation.already"
    applicant = load(station, IssuanceRequest, id=load(station, Credential, serial=revoked.serial).request_id).applicant_id
    assert lifecycle.revoke_for_applicant(station, applicant, actor="admin") == []
    with pytest.raises(RecordNotBacked), station.db.transaction() as s:
        require_backed(s, s.execute(select(Credential).filter_by(serial=revoked.serial)).scalar_one())


def test_active_credential_marked_revoked_is_still_revoked_for_real(station, pki, capsys):
    """Hiding an active credential as 'revoked' neither fools verify nor skips its revocation."""
    issued, *_ = issue(station, pki)
    sql(station, "UPDATE credentials SET status = 'revoked', revocation_reason = 'superseded' WHERE serial = :s", s=issued.serial)
    code, lines = audit_verify(station, capsys)
    assert code == 1
    assert "status 'revoked'" in row_lines(lines, "credentials ")[0] and "has no credential.revoked event" in row_lines(lines, "credentials ")[0]
    revocation.revoke(station, issued.serial, "keyCompromise", actor="admin")  # the chain says active: revoked now
    crl = revocation.publish_crl(station, actor="admin")
    assert crl.get_revoked_certificate_by_serial_number(issued.certificate.serial_number) is not None


def test_request_set_approved_is_named_and_not_backed(station, pki, capsys):
    request_id = open_request(station, pki)
    approver_id = load(station, Operator, identity=APPROVER).id
    sql(station, "UPDATE requests SET state = 'approved', approver_id = :a WHERE id = :r", a=approver_id, r=request_id)
    code, lines = audit_verify(station, capsys)
    assert code == 1
    (line,) = row_lines(lines, "requests ")
    assert line.startswith(f"requests {request_id}: state 'approved' has no request.approved event (the audit trail says 'requested')")
    assert "approver" in line
    assert backed(station, IssuanceRequest, id=request_id).startswith(f"requests {request_id}: state 'approved' has no request.approved")
    with pytest.raises(RecordNotBacked) as err, station.db.transaction() as s:
        require_backed(s, s.get(IssuanceRequest, request_id))
    assert err.value.code == "audit.unbacked"
    with station.db.transaction() as s:
        audited = audited_request(s, request_id)
    assert (audited.state, audited.registrar, audited.approver) == ("requested", REGISTRAR, None)


def test_edited_audit_event_backs_nothing(station, pki):
    """Turning the request.opened event into request.approved breaks its hash: it backs no approval."""
    request_id = open_request(station, pki)
    sql(station, "UPDATE requests SET state = 'approved' WHERE id = :r", r=request_id)
    sql(station, "UPDATE audit_events SET action = 'request.approved' WHERE action = 'request.opened' AND object_id = :r", r=str(request_id))
    assert "has no request.opened event" in backed(station, IssuanceRequest, id=request_id)


def test_operator_rows_edited(station, pki, capsys):
    ensure_operators(station)
    operators.add_operator(station, "leaver", display_name="L", roles=[operators.Role.AUDITOR], auth_method="piv", actor="admin")
    operators.disable_operator(station, "leaver", actor="admin")
    registrar, leaver = load(station, Operator, identity=REGISTRAR), load(station, Operator, identity="leaver")
    approver = load(station, Operator, identity=APPROVER)
    sql(station, "UPDATE operators SET roles = 'administrator registrar' WHERE id = :i", i=registrar.id)
    sql(station, "UPDATE operators SET auth_method = 'password', auth_reference = 'x' WHERE id = :i", i=approver.id)
    sql(station, "UPDATE operators SET active = :t WHERE id = :i", t=True, i=leaver.id)
    with station.db.transaction() as s:
        s.add(Operator(identity="ghost", display_name="G", roles="administrator", auth_method="password", auth_reference="x"))
    ghost = load(station, Operator, identity="ghost")
    code, lines = audit_verify(station, capsys)
    assert code == 1
    named = row_lines(lines, "operators ")
    assert sorted(named) == sorted([
        f"operators {registrar.id}: roles 'administrator registrar' are not the audited 'registrar'",
        f"operators {approver.id}: sign-in auth_method not as the audit trail recorded it",
        f"operators {leaver.id}: enabled, but the audit trail has it disabled (operator.disabled)",
        f"operators {ghost.id}: 'ghost' has no operator.added event (added behind the station's back)",
    ])


def test_changed_certificate_of_a_revoked_credential_stops_the_crl(station, pki, capsys):
    """The CRL reads the issuer from the certificate credential.issued recorded: a swapped or
    re-dated row cannot drop the entry silently."""
    revoked, *_ = issue(station, pki)
    other, *_ = issue(station, pki)
    revocation.revoke(station, revoked.serial, "keyCompromise", actor="admin")
    sql(station, "UPDATE credentials SET not_after = :t WHERE serial = :s", t=load(station, Credential, serial=revoked.serial).issued_at.replace(tzinfo=None), s=revoked.serial)
    assert revocation.publish_crl(station, actor="admin").get_revoked_certificate_by_serial_number(revoked.certificate.serial_number)
    code, lines = audit_verify(station, capsys)
    assert code == 1 and "notAfter" in row_lines(lines, "credentials ")[0]
    sql(station, "UPDATE credentials SET certificate = (SELECT certificate FROM credentials WHERE serial = :o) WHERE serial = :s",
        o=other.serial, s=revoked.serial)
    with pytest.raises(RecordNotBacked) as err:
        revocation.publish_crl(station, actor="admin")
    assert revoked.serial in str(err.value)


def test_applicant_piv_auth_and_crl_rows_edited(station, pki, capsys):
    """An applicant given an operator's FASC-N, a PIV Authentication certificate swapped for
    another, a CRL record re-counted: each named on its own line."""
    first, *_ = issue(station, pki)
    second, *_ = issue(station, pki)
    revocation.publish_crl(station, actor="admin")
    req = load(station, IssuanceRequest, id=load(station, Credential, serial=first.serial).request_id)
    other = load(station, IssuanceRequest, id=load(station, Credential, serial=second.serial).request_id)
    sql(station, "UPDATE applicants SET fascn = :f WHERE id = :i", f="D" * 50, i=req.applicant_id)
    sql(station, "UPDATE piv_auth_certificates SET der = (SELECT der FROM piv_auth_certificates WHERE id = :o) WHERE id = :i",
        o=other.piv_auth_certificate_id, i=req.piv_auth_certificate_id)
    sql(station, "UPDATE crls SET entries = 5")
    code, lines = audit_verify(station, capsys)
    assert code == 1
    assert row_lines(lines, "applicants ") == [f"applicants {req.applicant_id}: FASC-N {'D' * 50} was never recorded for this applicant"]
    (pac,) = row_lines(lines, "piv_auth_certificates ")
    assert pac.startswith(f"piv_auth_certificates {req.piv_auth_certificate_id}: certificate is not the one its fingerprint")
    (crl,) = row_lines(lines, "crls ")
    assert crl.endswith("CRL 1 with 5 entries has no crl.published event")


def test_approval_by_an_operator_given_the_role_behind_the_back(station, pki, capsys):
    """A registrar granted 'supervisor' in the database approves a request: verify names the
    operator row and the request whose approval no audited supervisor gave."""
    request_id = open_request(station, pki)
    operators.add_operator(station, "reg2", display_name="R2", roles=[operators.Role.REGISTRAR], auth_method="piv", actor="admin")
    sql(station, "UPDATE operators SET roles = 'registrar supervisor' WHERE identity = 'reg2'")
    issuance.approve_request(station, request_id, approver="reg2")
    code, lines = audit_verify(station, capsys)
    assert code == 1
    assert row_lines(lines, "operators ") == [f"operators {load(station, Operator, identity='reg2').id}: roles 'registrar supervisor' "
                                              "are not the audited 'registrar'"]
    (line,) = row_lines(lines, "requests ")
    assert line.startswith(f"requests {request_id}: request.approved at event ") and "by 'reg2', who was not then an enabled supervisor" in line
    with station.db.transaction() as s:
        assert "not then an enabled supervisor" in disagreement(s, s.get(IssuanceRequest, request_id))


def test_workflow_does_not_resume_a_request_approved_in_the_database(sqlite_station, icam_profile, crl_cache, softhsm_conf):
    """The reported attack: a request left `requested`, set to `approved` with SQL, then resumed.
    The engine refuses before PKI-AUTH (audit.unbacked, audited) and issues nothing."""
    from station.issuance.engine import IssuanceEngine, IssuanceRefused
    from station.issuance.signin import hash_password
    from station.issuance.targets import open_target
    from tests.conftest import init_softhsm_token
    from tests.issuance.test_engine import SECRETS, Script, card

    station = sqlite_station
    station.config["operators"] = {"allow_passwords": True}
    for identity, role in (("reg", operators.Role.REGISTRAR), ("sup", operators.Role.SUPERVISOR)):
        operators.add_operator(station, identity, display_name=identity, roles=[role], auth_method="password",
                               auth_reference=hash_password(SECRETS[identity]), actor="admin")
    eng = IssuanceEngine(station, icam_profile.with_revocation("crl"), Script(), crl_cache=crl_cache)
    target = open_target(init_softhsm_token(f"tamper-{uuid.uuid4().hex[:8]}", "55667788"))
    applicant = card()
    request_id = eng.open_request(applicant, registrar="reg", aal="AAL2", target=target)
    sql(station, "UPDATE requests SET state = 'approved', approver_id = :a WHERE id = :r", a=load(station, Operator, identity="sup").id, r=request_id)
    with pytest.raises(IssuanceRefused) as refused:
        eng.complete(request_id, applicant, target, registrar="reg")
    assert refused.value.code == "audit.unbacked"
    assert f"requests {request_id}: state 'approved' has no request.approved event" in str(refused.value)
    with station.db.transaction() as s:
        assert s.execute(select(Credential)).first() is None
        last = s.execute(text("SELECT action, details FROM audit_events ORDER BY seq DESC LIMIT 1")).one()
    assert last.action == "issuance.refused" and "audit.unbacked" in last.details
