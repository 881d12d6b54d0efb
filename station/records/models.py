"""SQLAlchemy 2 models of everything the station did.

Times are stored as UTC. Serial numbers are lowercase hexadecimal without leading zeros
(:func:`serial_hex`), certificate fingerprints are SHA-256 hex. Audit events keep their time
as the exact ISO 8601 string that was hashed, so the chain verifies byte for byte on SQLite
and PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from station.terms import RequestState, Role

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def serial_hex(serial: int) -> str:
    return format(serial, "x")


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=dt.timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class CredentialStatus(str, enum.Enum):
    ACTIVE = "active"
    REVOKED = "revoked"


class Operator(Base):
    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(primary_key=True)
    identity: Mapped[str] = mapped_column(String(255), unique=True)
    display_name: Mapped[str] = mapped_column(String(255))
    roles: Mapped[str] = mapped_column(String(255), default="")  # space-separated Role values
    auth_method: Mapped[str] = mapped_column(String(16))
    auth_reference: Mapped[str | None] = mapped_column(String(255))
    card_fascn: Mapped[str | None] = mapped_column(String(64), index=True)  # the operator's PIV card (hex)
    card_uuid: Mapped[str | None] = mapped_column(String(36), index=True)  # so no operator serves themself
    cardholder_uuid: Mapped[str | None] = mapped_column(String(36), index=True)  # the CHUID's, learnt at PIV sign-in
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    def has_role(self, role: Role) -> bool:
        return role.value in self.roles.split()


class Applicant(Base):
    __tablename__ = "applicants"

    id: Mapped[int] = mapped_column(primary_key=True)
    cardholder_uuid: Mapped[str | None] = mapped_column(String(36), index=True)
    fascn: Mapped[str | None] = mapped_column(String(64), index=True)  # 25-byte FASC-N, hex
    card_uuid: Mapped[str | None] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    piv_auth_certificates: Mapped[list[PivAuthCertificate]] = relationship(back_populates="applicant")


class PivAuthCertificate(Base):
    """A PIV Authentication certificate an applicant authenticated with (PKI-AUTH)."""

    __tablename__ = "piv_auth_certificates"

    id: Mapped[int] = mapped_column(primary_key=True)
    applicant_id: Mapped[int] = mapped_column(ForeignKey("applicants.id"), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of the DER
    serial: Mapped[str] = mapped_column(String(64))
    issuer: Mapped[str] = mapped_column(Text)  # RFC 4514
    subject: Mapped[str] = mapped_column(Text)
    not_after: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    applicant: Mapped[Applicant] = relationship(back_populates="piv_auth_certificates")


class IssuanceRequest(Base):
    __tablename__ = "requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    applicant_id: Mapped[int] = mapped_column(ForeignKey("applicants.id"), index=True)
    piv_auth_certificate_id: Mapped[int] = mapped_column(ForeignKey("piv_auth_certificates.id"))
    state: Mapped[str] = mapped_column(String(16), default=RequestState.REQUESTED.value)
    aal: Mapped[str] = mapped_column(String(8))
    target_kind: Mapped[str] = mapped_column(String(32))
    target_uri: Mapped[str | None] = mapped_column(String(512))  # PIN-free identity of the target device
    target_state: Mapped[str | None] = mapped_column(Text)  # the target's resume state (JSON, no secrets)
    registrar_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    approver_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    issued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    applicant: Mapped[Applicant] = relationship()
    piv_auth_certificate: Mapped[PivAuthCertificate] = relationship()
    registrar: Mapped[Operator] = relationship(foreign_keys=[registrar_id])
    approver: Mapped[Operator | None] = relationship(foreign_keys=[approver_id])
    credential: Mapped[Credential | None] = relationship(back_populates="request")


class Credential(Base):
    """A derived PIV Authentication certificate the station issued."""

    __tablename__ = "credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), unique=True)
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    issuer_key_id: Mapped[str] = mapped_column(String(64), index=True)  # issuing CA's subjectKeyIdentifier, hex
    certificate: Mapped[bytes] = mapped_column(LargeBinary)  # DER
    policy: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(Text)
    san_uuid: Mapped[str] = mapped_column(String(36), unique=True)
    public_key_sha256: Mapped[str] = mapped_column(String(64))
    target_device: Mapped[str | None] = mapped_column(String(255))
    piv_auth_certificate_id: Mapped[int] = mapped_column(ForeignKey("piv_auth_certificates.id"), index=True)
    not_before: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=CredentialStatus.ACTIVE.value)
    revocation_reason: Mapped[str | None] = mapped_column(String(32))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # when the PIV Authentication certificate's status was checked again after issuance
    # (Common Policy §3.2.3.1: seven days after issuance)
    piv_auth_rechecked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    request: Mapped[IssuanceRequest] = relationship(back_populates="credential")
    piv_auth_certificate: Mapped[PivAuthCertificate] = relationship()


class CrlIssue(Base):
    """A CRL the station signed. Numbers increase per CA key (several stations may share a database)."""

    __tablename__ = "crls"
    __table_args__ = (UniqueConstraint("issuer_key_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer_key_id: Mapped[str] = mapped_column(String(64))
    number: Mapped[int] = mapped_column(Integer)
    this_update: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    next_update: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    entries: Mapped[int] = mapped_column(Integer)
    der: Mapped[bytes] = mapped_column(LargeBinary)


class AuditEvent(Base):
    """One link of the hash chain (see :mod:`station.audit.chain`)."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_object", "object_type", "object_id"),)  # a step's replay (migration 0004)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    occurred_at: Mapped[str] = mapped_column(String(32))  # ISO 8601 UTC, exactly as hashed
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    details: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """The single row every appender locks: serialises appends from several stations."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class AuditKey(Base):
    """A station's audit public key (chain heads are signed with the private half)."""

    __tablename__ = "audit_keys"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    station_id: Mapped[str] = mapped_column(String(36))
    public_key_pem: Mapped[str] = mapped_column(Text)
    registered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditCheckpoint(Base):
    """A signed chain head: ``seq`` and the event hash at that point."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, index=True)
    head_hash: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[str] = mapped_column(String(32))
    key_fingerprint: Mapped[str] = mapped_column(ForeignKey("audit_keys.fingerprint"))
    signature: Mapped[bytes] = mapped_column(LargeBinary)
