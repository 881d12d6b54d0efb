"""After issuance: the seven-day recheck of the PIV Authentication certificate, and the end
of the PIV card.

* Common Policy §3.2.3.1 (a SHOULD): seven days after issuance the CA checks again the
  revocation status of the PIV Authentication certificate used at issuance, and revokes the
  derived credential if that certificate was revoked. :func:`due_for_piv_auth_recheck` lists
  what to check; the check itself is path validation (``station.validation.validation``);
  :func:`record_piv_auth_status` records the answer.
* FIPS 201-3 §2.10.2: when the PIV card is terminated, the derived credentials of that PIV
  identity account are invalidated: :func:`revoke_for_applicant`.

Which credentials are active is what the audit trail says (:mod:`station.audit.backing`), not
the ``status`` column: a revoked credential set back to active behind the station's back is
not rechecked or revoked again, and an active one marked revoked is not skipped.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from sqlalchemy import select

from station.audit.backing import AuditedCredential, audited_statuses, replay_credentials
from station.records.models import Credential, IssuanceRequest, PivAuthCertificate, utcnow
from station.service.revocation import mark_revoked
from station.service.station import Station

RECHECK_AFTER = dt.timedelta(days=7)
PIV_REVOKED_REASON = x509.ReasonFlags.privilege_withdrawn


@dataclass(frozen=True)
class RecheckDue:
    piv_auth_certificate_id: int
    piv_auth_certificate: x509.Certificate
    serials: tuple[str, ...]  # the active credentials that depend on it


def due_for_piv_auth_recheck(station: Station, *, now: dt.datetime | None = None) -> list[RecheckDue]:
    """PIV Authentication certificates behind active credentials issued at least seven days
    ago and not rechecked since."""
    cutoff = (now or utcnow()) - RECHECK_AFTER
    with station.db.transaction() as session:
        rows = session.execute(
            select(PivAuthCertificate.id, PivAuthCertificate.der, Credential.serial)
            .join(Credential, Credential.piv_auth_certificate_id == PivAuthCertificate.id)
            .where(Credential.issued_at <= cutoff, Credential.piv_auth_rechecked_at.is_(None))
            .order_by(PivAuthCertificate.id, Credential.serial)
        ).all()
        rows = _audited_active(rows, replay_credentials(session).credentials)  # station-wide: one replay
    grouped: dict[int, tuple[bytes, list[str]]] = {}
    for pac_id, der, serial in rows:
        grouped.setdefault(pac_id, (der, []))[1].append(serial)
    return [RecheckDue(pac_id, x509.load_der_x509_certificate(der), tuple(serials)) for pac_id, (der, serials) in grouped.items()]


def _audited_active(rows: list, audited: dict[str, AuditedCredential]) -> list:
    """The rows (each with a ``serial``) whose credential the audit trail has active."""
    return [row for row in rows if (cred := audited.get(row.serial)) is not None and cred.active]


def _revoke_all(station: Station, session, credentials: list[Credential], reason: x509.ReasonFlags, actor: str, why: str) -> list[str]:  # noqa: ANN001
    for cred in credentials:
        mark_revoked(station, session, cred, reason, actor=actor, because=why)
    return [c.serial for c in credentials]


def record_piv_auth_status(station: Station, piv_auth_certificate_id: int, *, revoked: bool, actor: str) -> list[str]:
    """Record the recheck of one PIV Authentication certificate; when it is revoked, revoke the
    active derived credentials issued on it. Returns the serials revoked."""
    with station.db.transaction() as session:
        rows = session.execute(
            select(Credential).where(Credential.piv_auth_certificate_id == piv_auth_certificate_id).with_for_update()
        ).scalars().all()
        active = _audited_active(rows, audited_statuses(session, [c.serial for c in rows]))
        now = utcnow()
        for cred in active:
            cred.piv_auth_rechecked_at = now
        station.audit.append(
            session,
            actor=actor,
            action="piv_auth.rechecked",
            object_type="piv_auth_certificate",
            object_id=piv_auth_certificate_id,
            details={"revoked": revoked, "credentials": [c.serial for c in active]},
        )
        if not revoked:
            return []
        return _revoke_all(station, session, active, PIV_REVOKED_REASON, actor, "PIV Authentication certificate revoked")


def revoke_for_applicant(
    station: Station, applicant_id: int, *, actor: str, reason: x509.ReasonFlags = PIV_REVOKED_REASON
) -> list[str]:
    """The PIV card was terminated: revoke every active derived credential of the applicant."""
    with station.db.transaction() as session:
        rows = session.execute(
            select(Credential)
            .join(IssuanceRequest, Credential.request_id == IssuanceRequest.id)
            .where(IssuanceRequest.applicant_id == applicant_id)
            .with_for_update(of=Credential)
        ).scalars().all()
        active = _audited_active(rows, audited_statuses(session, [c.serial for c in rows]))
        return _revoke_all(station, session, active, reason, actor, "PIV card terminated")
