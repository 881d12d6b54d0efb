"""``station init``: a new station home with its issuing CA, audit key, records and config,
and its first administrator (every later change is made by a signed-in operator, and only an
administrator enrols operators)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from station.audit.log import SYSTEM_ACTOR, AuditLog
from station.ca import ca_store
from station.ca.ca import CAError
from station.ca.profile import MAX_VALIDITY_DAYS, ProfileSettings
from station.enrollment import tls
from station.errors import StationError
from station.home import StationHome
from station.records.database import open_database, split_password
from station.service.operators import PasswordsNotAllowed
from station.secret_store import DATABASE_PASSWORD, choose_store_kind, open_secret_store


@dataclass(frozen=True)
class InitOptions:
    trust_profile: Path
    ca_key: str = "file"  # "file" or a pkcs11: URI
    key_algorithm: str = "P-256"
    ca_subject: str | None = None  # RFC 4514; default names the station
    import_ca: Path | None = None
    import_key: str | None = None
    db_url: str | None = None
    demo: bool = False
    ca_issuers_url: str | None = None
    crl_url: str | None = None
    ocsp_url: str | None = None
    max_validity_days: int = MAX_VALIDITY_DAYS
    crl_next_update_hours: int = 24
    checkpoint_every_events: int = 100
    checkpoint_every_seconds: int = 3600
    admin: str | None = None  # the first administrator's identity
    admin_password_hash: str | None = None  # argon2id (station.issuance.signin.hash_password), or:
    admin_piv_cert: bytes | None = None  # their PIV Authentication certificate (PEM or DER)
    allow_operator_passwords: bool = False  # [operators] allow_passwords
    enrollment_host: str = "127.0.0.1"  # [enrollment] host: phones reach the EST service there (its TLS certificate's SAN)
    enrollment_port: int = 8443


class InitError(StationError):
    """Options of ``station init`` that do not go together, or a file it cannot read."""

    class Code(str, Enum):
        INIT = "init"
        PROFILE = "init.profile"
        ADMIN = "init.admin"

    code = Code.INIT.value
    hint = "see `station init --help`"


ADMIN_PASSWORD_REFUSED = "an administrator password needs operator passwords allowed"


def _check_options(home: StationHome, opts: InitOptions) -> None:
    if home.exists() and "ca" in home.load_config():
        raise ca_store.CAExists(f"{home.config_path} already configures an issuing CA")
    for relative in (ca_store.CA_CERT, ca_store.CA_KEY, ca_store.AUDIT_KEY, "audit/anchor.json"):
        if home.path(relative).exists():
            raise ca_store.CAExists(f"{home.path(relative)} already exists")
    if not opts.trust_profile.is_file():
        raise InitError(f"cannot read the trust profile {opts.trust_profile}", code=InitError.Code.PROFILE, hint="give a readable --profile FILE")
    opts.trust_profile.read_bytes()
    if (opts.import_ca is None) != (opts.import_key is None):
        raise CAError("--import-ca and --import-key go together", code=CAError.Code.INIT_IMPORT)
    if opts.admin is not None and (opts.admin_password_hash is None) == (opts.admin_piv_cert is None):
        raise InitError("the first administrator signs in with a password or a PIV card: give one of them",
                        code=InitError.Code.ADMIN, hint="pipe the password on standard input, or give --admin-piv-cert FILE")
    if opts.admin_password_hash is not None and not opts.allow_operator_passwords:
        raise PasswordsNotAllowed(ADMIN_PASSWORD_REFUSED)


def _admin_card(home: StationHome, opts: InitOptions):
    """The first administrator's PIV card, checked under this station's trust profile."""
    from station.validation.trust import TrustProfile
    from station.service.operators import piv_auth_card

    home.crl_dir.mkdir(parents=True, exist_ok=True)
    return piv_auth_card(opts.admin_piv_cert, TrustProfile.load(opts.trust_profile), cache_dir=home.crl_dir,
                         source="the administrator's certificate")


def initialize(home: StationHome, opts: InitOptions, *, ask_pin: ca_store.PinProvider | None = None,
               ask_passphrase: ca_store.PassphraseProvider | None = None) -> dict:
    """Create everything; returns the configuration written. Refuses to overwrite a CA.
    ``ask_pin`` gives the CA token's PIN when the URI carries none, ``ask_passphrase`` an
    imported key file's passphrase (the caller's providers: this layer asks nobody)."""
    _check_options(home, opts)
    station_id = str(uuid.uuid4())
    store_kind = choose_store_kind(demo=opts.demo)  # fails before anything is written
    admin_card = _admin_card(home, opts) if opts.admin_piv_cert is not None else None
    default_base = f"http://pki.example.invalid/derived-piv/{station_id[:8]}"
    settings = ProfileSettings(
        ca_issuers_url=opts.ca_issuers_url or f"{default_base}/ca.p7c",
        crl_url=opts.crl_url or f"{default_base}/ca.crl",
        ocsp_url=opts.ocsp_url,
        max_validity_days=opts.max_validity_days,
    )
    home.make_private()
    store = open_secret_store(station_id, home.root, kind=store_kind, demo=opts.demo)
    db_url = opts.db_url or home.default_database_url()
    own_db = home.root / "station.db"
    new_sqlite = opts.db_url is None and not own_db.exists()
    stored_url, db_password = split_password(db_url)
    if db_password is not None:
        store.put(DATABASE_PASSWORD, db_password)
    db = open_database(db_url)
    # none of these existed (checked above): remove them all if anything fails
    created = [home.path(p) for p in (ca_store.CA_CERT, ca_store.CA_KEY, ca_store.AUDIT_KEY, ca_store.AUDIT_PUBLIC_KEY,
                                      tls.TLS_CERT, tls.TLS_KEY)]
    created.append(home.audit_anchor)
    ca = None
    try:
        if opts.import_ca is not None:
            ca, key_ref = ca_store.import_ca(home, store, cert_path=opts.import_ca, key_uri=opts.import_key or "",
                                             ask_pin=ask_pin, ask_passphrase=ask_passphrase)
            how = "ca.imported"
        else:
            subject = x509.Name.from_rfc4514_string(
                opts.ca_subject or f"CN=Derived PIV Station CA {station_id[:8]},OU=Derived PIV Station,O=U.S. Government,C=US"
            )
            ca, key_ref = ca_store.create_ca(home, store, subject=subject, key=opts.ca_key, algorithm=opts.key_algorithm,
                                             ask_pin=ask_pin)
            how = "ca.created"
        ca_store.create_audit_key(home, store)
        tls.create(home, store, opts.enrollment_host, station_id)
        config = {
            "station_id": station_id,
            "demo": opts.demo,
            "trust_profile": str(opts.trust_profile.resolve()),
            "secrets": {"store": store_kind},
            "database": ({"url": stored_url} if opts.db_url else {}) | ({"password_in_keyring": True} if db_password else {}),
            "ca": {"certificate": ca_store.CA_CERT, "key": key_ref},
            "profile": {
                "ca_issuers_url": settings.ca_issuers_url,
                "crl_url": settings.crl_url,
                **({"ocsp_url": settings.ocsp_url} if settings.ocsp_url else {}),
                "max_validity_days": settings.max_validity_days,
            },
            "crl": {"next_update_hours": opts.crl_next_update_hours},
            "audit": {
                "checkpoint_every_events": opts.checkpoint_every_events,
                "checkpoint_every_seconds": opts.checkpoint_every_seconds,
            },
            "operators": {"allow_passwords": opts.allow_operator_passwords},
            "enrollment": {"host": opts.enrollment_host, "port": opts.enrollment_port},
        }
        audit = AuditLog(
            station_id,
            ca_store.load_audit_signer(home, store),
            opts.checkpoint_every_events,
            opts.checkpoint_every_seconds,
            anchor=home.audit_anchor,
        )
        with db.transaction() as session:
            audit.register_key(session)
            audit.append(
                session,
                actor=SYSTEM_ACTOR,
                action=how,
                object_type="ca",
                object_id=format(ca.certificate.serial_number, "x"),
                details={
                    "station_id": station_id,
                    "subject": ca.certificate.subject.rfc4514_string(),
                    "certificate_sha256": ca.certificate.fingerprint(hashes.SHA256()).hex(),
                    "key": key_ref,
                    "keyring": store_kind,
                    "trust_profile": config["trust_profile"],
                },
            )
            if opts.admin is not None:
                _enrol_admin(session, audit, opts, admin_card)
            audit.checkpoint(session)
        home.save_config(config)
    except BaseException:
        if new_sqlite:
            created += [own_db, own_db.with_name("station.db-wal"), own_db.with_name("station.db-shm")]
        db.close()
        for path in created:
            path.unlink(missing_ok=True)
        raise
    finally:
        if ca is not None and hasattr(ca.signer, "close"):
            ca.signer.close()
        db.close()
    return config


def _enrol_admin(session, audit: AuditLog, opts: InitOptions, card) -> None:
    from station.terms import AuthMethod, Role
    from station.service.operators import enrol

    enrol(session, audit, opts.admin, display_name=opts.admin, roles=[Role.ADMINISTRATOR],
          auth_method=AuthMethod.PIV if card else AuthMethod.PASSWORD,
          auth_reference=card.sha256 if card else opts.admin_password_hash, actor=SYSTEM_ACTOR,
          card_fascn=card.fascn if card else None, card_uuid=card.card_uuid if card else None)
