"""Listing, revoking and publishing CRLs for the credentials the station issued."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select

from station.audit.backing import AuditedCredential, RecordNotBacked, audited_status, replay_credentials, row_name
from station.ca.ca import Revocation
from station.errors import StationError
from station.home import write_private
from station.records.models import Credential, CredentialStatus, CrlIssue, serial_hex, utcnow
from station.service.station import Station

# RFC 5280 §5.3.1 reasons a derived PIV credential may be revoked for (no certificateHold)
REASONS = {
    r.value.lower(): r
    for r in x509.ReasonFlags
    if r not in (x509.ReasonFlags.certificate_hold, x509.ReasonFlags.remove_from_crl, x509.ReasonFlags.aa_compromise, x509.ReasonFlags.ca_compromise)
}


class RevocationError(StationError):
    class Code(str, Enum):
        REVOCATION = "revocation"
        REASON = "revocation.reason"
        SERIAL = "revocation.serial"
        UNKNOWN_SERIAL = "revocation.unknown_serial"
        ALREADY = "revocation.already"

    code = Code.REVOCATION.value
    hint = "check the serial with `station credentials list`"


def parse_reason(text: str) -> x509.ReasonFlags:
    key = text.replace("-", "").replace("_", "").lower()
    if key not in REASONS:
        raise RevocationError(
            f"unknown revocation reason {text!r}",
            code=RevocationError.Code.REASON,
            hint="one of " + ", ".join(r.value for r in REASONS.values()),
        )
    return REASONS[key]


def parse_serial(text: str) -> str:
    """A serial number as typed (hex, optionally 0x-prefixed or with colons) -> stored form."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    try:
        return serial_hex(int(cleaned, 16))
    except ValueError:
        raise RevocationError(f"not a hexadecimal serial number: {text!r}", code=RevocationError.Code.SERIAL) from None


@dataclass(frozen=True)
class CredentialView:
    serial: str
    subject: str
    policy: str
    status: str
    not_after: dt.datetime
    issued_at: dt.datetime
    target_device: str | None
    revocation_reason: str | None
    revoked_at: dt.datetime | None
    request_id: int
    certificate_pem: str


UNBACKED = "unbacked"  # a credentials row with no credential.issued event: the station does not act on it


def _view(c: Credential, audited: AuditedCredential | None) -> CredentialView:
    """The row with its status, reason and revocation time as the audit trail has them."""
    pem = x509.load_der_x509_certificate(c.certificate).public_bytes(serialization.Encoding.PEM).decode()
    status = audited.status if audited else UNBACKED
    reason = audited.reason if audited else None
    revoked_at = dt.datetime.fromisoformat(audited.revoked_at) if audited and audited.revoked_at else None
    return CredentialView(c.serial, c.subject, c.policy, status, c.not_after, c.issued_at, c.target_device, reason, revoked_at,
                          c.request_id, pem)


def list_credentials(station: Station, *, status: str | None = None) -> list[CredentialView]:
    """Every credential, with the status the audit trail gives it (``status`` filters on that)."""
    with station.db.transaction() as session:
        audited = replay_credentials(session).credentials
        views = [_view(c, audited.get(c.serial))
                 for c in session.execute(select(Credential).order_by(Credential.issued_at, Credential.id)).scalars()]
    return [v for v in views if not status or v.status == status]


def show_credential(station: Station, serial: str) -> CredentialView:
    with station.db.transaction() as session:
        cred = session.execute(select(Credential).where(Credential.serial == parse_serial(serial))).scalar_one_or_none()
        if cred is None:
            raise RevocationError(f"no credential with serial {serial}", code=RevocationError.Code.UNKNOWN_SERIAL)
        return _view(cred, audited_status(session, cred.serial))


def revoke(station: Station, serial: str, reason: str | x509.ReasonFlags, *, actor: str) -> CredentialView:
    flag = reason if isinstance(reason, x509.ReasonFlags) else parse_reason(reason)
    with station.db.transaction() as session:
        cred = session.execute(select(Credential).where(Credential.serial == parse_serial(serial)).with_for_update()).scalar_one_or_none()
        if cred is None:
            raise RevocationError(f"no credential with serial {serial}", code=RevocationError.Code.UNKNOWN_SERIAL)
        audited = audited_status(session, cred.serial)  # the chain says, not the status column
        if audited is None:
            raise RecordNotBacked(f"{row_name(cred)}: serial {cred.serial} has no credential.issued event: the station does not act on it")
        if audited.status == CredentialStatus.REVOKED.value:
            raise RevocationError(f"credential {cred.serial} is already revoked ({audited.reason})", code=RevocationError.Code.ALREADY)
        mark_revoked(station, session, cred, flag, actor=actor)
        return _view(cred, audited_status(session, cred.serial))


def on_device(station: Station, certificate: x509.Certificate) -> tuple[str, bool] | None:
    """A certificate found on a target device: (serial, still active as the chain says) when it
    is this station's credential (same serial and bytes), else None."""
    serial = serial_hex(certificate.serial_number)
    with station.db.transaction() as session:
        cred = session.execute(select(Credential).where(Credential.serial == serial)).scalar_one_or_none()
        if cred is None or cred.certificate != certificate.public_bytes(serialization.Encoding.DER):
            return None
        audited = audited_status(session, serial)
        return serial, audited is not None and audited.status == CredentialStatus.ACTIVE.value


def supersede(station: Station, serial: str, *, actor: str, request_id: int) -> bool:
    """Revoke (``superseded``) the credential whose key request ``request_id`` is about to
    replace on its token; False when it is no longer active (revoked already: nothing to do)."""
    with station.db.transaction() as session:
        cred = session.execute(select(Credential).where(Credential.serial == serial).with_for_update()).scalar_one_or_none()
        audited = audited_status(session, serial) if cred is not None else None
        if audited is None or audited.status != CredentialStatus.ACTIVE.value:
            return False
        mark_revoked(station, session, cred, x509.ReasonFlags.superseded, actor=actor,
                     because=f"replaced on its token by request {request_id}")
        return True


def mark_revoked(station: Station, session, cred: Credential, reason: x509.ReasonFlags, *, actor: str,  # noqa: ANN001
                 because: str | None = None) -> None:
    """Revoke ``cred`` inside ``session``: status, reason, time and the audit event commit together."""
    cred.status, cred.revocation_reason, cred.revoked_at = CredentialStatus.REVOKED.value, reason.value, utcnow()
    details = {"serial": cred.serial, "reason": reason.value}
    if because:
        details["because"] = because
    station.audit.append(session, actor=actor, action="credential.revoked", object_type="credential",
                         object_id=cred.serial, details=details)


def _authority_key_id(der: bytes) -> str | None:
    try:
        aki = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    return aki.key_identifier.hex() if aki.key_identifier else None


def audited_revocations(station: Station, session, *, now: dt.datetime) -> list[Revocation]:  # noqa: ANN001
    """This CA's unexpired revocations as the audit trail has them: every ``credential.revoked``
    event, whatever the ``credentials`` rows say now. The issuer is read from the certificate
    that ``credential.issued`` recorded (its SHA-256), the expiry from that event; a revoked
    credential whose certificate is gone or changed in the records stops the CRL (a CRL that
    silently leaves it off would be worse)."""
    revoked = {serial: c for serial, c in replay_credentials(session).credentials.items() if c.revoked_at is not None}
    if not revoked:
        return []
    ders = dict(session.execute(select(Credential.serial, Credential.certificate).where(Credential.serial.in_(revoked))).all())
    entries = []
    for serial, audited in sorted(revoked.items(), key=lambda item: item[1].revoked_seq):
        der = ders.get(serial)
        if der is None or hashlib.sha256(der).hexdigest() != audited.certificate_sha256:
            raise RecordNotBacked(f"credential {serial} is revoked in the audit trail but its certificate is gone or changed "
                                  "in the records: no CRL is signed without it", code=RecordNotBacked.Code.REVOCATION_UNBACKED)
        if _authority_key_id(der) != station.ca.key_id or dt.datetime.fromisoformat(audited.not_after) <= now:
            continue
        entries.append(Revocation(int(serial, 16), dt.datetime.fromisoformat(audited.revoked_at), x509.ReasonFlags(audited.reason)))
    return entries


def publish_crl(station: Station, *, actor: str, out: Path | None = None, now: dt.datetime | None = None) -> x509.CertificateRevocationList:
    """Sign this CA's next CRL (number = its last + 1), record it, cache it in the home, write ``out``.

    The entries are the audited revocations (:func:`audited_revocations`), not the status
    column. Only credentials issued by this station's CA key are listed (stations sharing a
    database may have CAs of their own); expired ones are left off (RFC 5280 §3.3)."""
    now = (now or utcnow()).replace(microsecond=0)
    key_id = station.ca.key_id
    with station.db.transaction() as session:
        number = (session.execute(select(func.max(CrlIssue.number)).where(CrlIssue.issuer_key_id == key_id)).scalar_one() or 0) + 1
        entries = audited_revocations(station, session, now=now)
        der = station.ca.crl_der(entries, number=number, this_update=now, next_update=now + station.crl_lifetime)
        crl = x509.load_der_x509_crl(der)
        session.add(CrlIssue(issuer_key_id=key_id, number=number, this_update=now, next_update=now + station.crl_lifetime, entries=len(entries), der=der))
        station.audit.append(
            session,
            actor=actor,
            action="crl.published",
            object_type="crl",
            object_id=number,
            details={"number": number, "entries": len(entries), "next_update": (now + station.crl_lifetime).isoformat()},
        )
    latest = station.home.crl_dir / "latest.crl"
    write_private(latest, der)
    latest.chmod(0o644)  # a CRL is public
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(der)
    return crl
