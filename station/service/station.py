"""An opened station: home, configuration, records, secrets, CA and audit log together."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from station.audit.log import AuditLog
from station.ca import ca_store
from station.ca.ca import IssuingCA
from station.ca.profile import ProfileSettings
from station.home import HomeError, StationHome
from station.records.database import Database, open_database, with_password
from station.secret_store import DATABASE_PASSWORD, SecretStore, open_secret_store


def _positive(section: dict[str, Any], key: str, default: float, home: StationHome) -> float:
    """A duration from the configuration: a number above 0."""
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise HomeError(f"{key} in {home.config_path} must be a number above 0, not {value!r}",
                        code=HomeError.Code.BAD_CONFIG, hint="fix the value in station.toml")
    return float(value)


@dataclass
class Station:
    home: StationHome
    config: dict[str, Any]
    db: Database
    audit: AuditLog
    _secrets: SecretStore | None = None
    _ca: IssuingCA | None = field(default=None, repr=False)
    _trust_profiles: dict = field(default_factory=dict, repr=False)  # loaded once per open station (service/session.py)
    _enrollment: Any = field(default=None, repr=False)  # the EST service, once a phone needs it (service/enrollment.py)

    @classmethod
    def open(cls, home: StationHome, *, db_url: str | None = None, signing: bool = True) -> Station:
        """``signing=False`` opens without touching the keyring (read-only commands)."""
        config = home.load_config()
        if not isinstance(config.get("station_id"), str) or not config["station_id"]:
            raise HomeError(f"{home.config_path} has no valid station_id", code=HomeError.Code.BAD_CONFIG,
                            hint="restore station.toml from a backup: station_id is set once by `station init`")
        home.make_private()  # a home made before homes were private, or by hand
        db_config = config.get("database") or {}
        url = db_url or db_config.get("url") or home.default_database_url()
        secrets = None
        if db_url is None and db_config.get("password_in_keyring"):
            secrets = cls._open_secrets(home, config)
            url = with_password(url, secrets.get(DATABASE_PASSWORD))
        db = open_database(url, busy_timeout=_positive(db_config, "busy_timeout_seconds", 10.0, home))
        audit_cfg = config.get("audit") or {}
        audit = AuditLog(
            station_id=config["station_id"],
            checkpoint_every_events=int(audit_cfg.get("checkpoint_every_events", 100)),
            checkpoint_every_seconds=int(audit_cfg.get("checkpoint_every_seconds", 3600)),
            anchor=home.audit_anchor,
        )
        station = cls(home, config, db, audit, secrets)
        if signing:
            audit.signer = ca_store.load_audit_signer(home, station.secrets)
        return station

    @property
    def station_id(self) -> str:
        return self.config["station_id"]

    @staticmethod
    def _open_secrets(home: StationHome, config: dict[str, Any]) -> SecretStore:
        kind = (config.get("secrets") or {}).get("store", "os-keyring")
        return open_secret_store(config["station_id"], home.root, kind=kind, demo=bool(config.get("demo")))

    @property
    def secrets(self) -> SecretStore:
        if self._secrets is None:
            self._secrets = self._open_secrets(self.home, self.config)
        return self._secrets

    @property
    def ca(self) -> IssuingCA:
        if self._ca is None:
            self._ca = ca_store.load_ca(self.home, self.config, self.secrets)
        return self._ca

    @property
    def profile_settings(self) -> ProfileSettings:
        return ProfileSettings.from_config(self.config["profile"])

    @property
    def crl_lifetime(self) -> dt.timedelta:
        return dt.timedelta(hours=_positive(self.config.get("crl") or {}, "next_update_hours", 24, self.home))

    def issuance_session(self, interaction, **options):
        """The composition root of an issuance (:class:`station.service.session.IssuanceSession`):
        ``cancel``, ``applicant_reader``, ``operator_readers`` {identity: reader}, ``target`` (a
        target URI), ``revocation`` (override the trust profiles' mode); a context manager."""
        from station.service.session import IssuanceSession

        return IssuanceSession(self, interaction, **options)

    def close(self) -> None:
        if self._enrollment is not None:
            self._enrollment.stop()
            self._enrollment = None
        close = getattr(self._ca.signer, "close", None) if self._ca else None
        if close:
            close()
        self.db.close()

    def __enter__(self) -> Station:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
