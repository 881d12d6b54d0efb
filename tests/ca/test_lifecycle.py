"""After issuance: the seven-day PIV Authentication recheck and the end of the PIV card."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from station.records.models import AuditEvent, Credential, IssuanceRequest
from station.service import lifecycle

from .ca_helpers import issue


def age(station, serial, days):
    with station.db.transaction() as s:
        cred = s.execute(select(Credential).where(Credential.serial == serial)).scalar_one()
        cred.issued_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)


def status(station, serial):
    with station.db.transaction() as s:
        return s.execute(select(Credential.status, Credential.revocation_reason).where(Credential.serial == serial)).one()


def test_recheck_after_seven_days(station, pki):
    old, _, piv_old, _ = issue(station, pki)
    new, *_ = issue(station, pki)
    age(station, old.serial, 8)
    age(station, new.serial, 2)
    due = lifecycle.due_for_piv_auth_recheck(station)
    assert [d.serials for d in due] == [(old.serial,)]
    assert due[0].piv_auth_certificate == piv_old

    assert lifecycle.record_piv_auth_status(station, due[0].piv_auth_certificate_id, revoked=False, actor="job") == []
    assert lifecycle.due_for_piv_auth_recheck(station) == []
    assert status(station, old.serial) == ("active", None)


def test_revoked_piv_auth_certificate_revokes_the_derived_credential(station, pki):
    issued, *_ = issue(station, pki)
    age(station, issued.serial, 7)
    (due,) = lifecycle.due_for_piv_auth_recheck(station)
    assert lifecycle.record_piv_auth_status(station, due.piv_auth_certificate_id, revoked=True, actor="job") == [issued.serial]
    assert status(station, issued.serial) == ("revoked", "privilegeWithdrawn")
    with station.db.transaction() as s:
        actions = s.execute(select(AuditEvent.action).order_by(AuditEvent.seq.desc()).limit(2)).scalars().all()
    assert actions == ["credential.revoked", "piv_auth.rechecked"]


def test_terminated_card_revokes_all_of_the_applicants_credentials(station, pki):
    piv = pki.piv_auth()
    first, *_ = issue(station, pki, piv_cert=piv)
    second, *_ = issue(station, pki, piv_cert=piv, aal="AAL3", target="smart-card")
    other, *_ = issue(station, pki)
    with station.db.transaction() as s:
        applicant = s.execute(select(IssuanceRequest.applicant_id).join(Credential).where(Credential.serial == first.serial)).scalar_one()
    assert sorted(lifecycle.revoke_for_applicant(station, applicant, actor="admin")) == sorted([first.serial, second.serial])
    assert status(station, first.serial)[0] == status(station, second.serial)[0] == "revoked"
    assert status(station, other.serial) == ("active", None)
