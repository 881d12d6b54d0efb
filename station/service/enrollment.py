"""The station's EST enrollment service, wired: one per open station, started when a phone
target first needs it and stopped when the station closes.

Configuration (``[enrollment]`` in station.toml; ``station init --enrollment-host`` sets the
host the TLS certificate names): ``host`` (default 127.0.0.1), ``port`` (8443; 0 picks a free
one), ``code_minutes`` (a binding's lifetime, at most 10), ``max_body_bytes``,
``header_seconds``, ``body_seconds``, ``max_connections``, ``attestation_roots`` (PEM files of
the key attestation roots a phone's AAL3 needs; none by default). A home made before the
service existed gets its TLS certificate when the service first starts.
"""

from __future__ import annotations

from station.service.station import Station

MAX_CODE_MINUTES = 10


def _settings(station: Station) -> dict:
    return station.config.get("enrollment") or {}


def enrollment_service(station: Station):
    """The running :class:`station.enrollment.service.EnrollmentService` of ``station``."""
    if station._enrollment is not None:
        return station._enrollment
    from station.enrollment import tls
    from station.enrollment.android_attestation import load_roots, verify_android_attestation
    from station.enrollment.binding import BindingRegistry
    from station.enrollment.service import EnrollmentService, Hooks, Limits
    from station.home import HomeError
    from station.service import requests, revocation

    settings = _settings(station)
    host = str(settings.get("host", "127.0.0.1"))
    identity = tls.load(station.home, station.secrets) or tls.create(station.home, station.secrets, host, station.station_id)
    minutes = float(settings.get("code_minutes", MAX_CODE_MINUTES))
    if not 0 < minutes <= MAX_CODE_MINUTES:
        raise HomeError(f"[enrollment] code_minutes must be above 0 and at most {MAX_CODE_MINUTES}, not {minutes}",
                        code=HomeError.Code.BAD_CONFIG, hint="fix the value in station.toml")
    roots = load_roots(settings.get("attestation_roots", []), station.home.root)
    defaults = Limits()
    limits = Limits(max_body=int(settings.get("max_body_bytes", defaults.max_body)),
                    header_seconds=float(settings.get("header_seconds", defaults.header_seconds)),
                    body_seconds=float(settings.get("body_seconds", defaults.body_seconds)),
                    max_connections=int(settings.get("max_connections", defaults.max_connections)))

    def audit(request_id: int | None, action: str, details: dict) -> None:
        requests.record_event(station, request_id, actor="enrollment-service", action=action, details=details)

    def is_revoked(serial: str) -> bool:
        return revocation.show_credential(station, serial).status == "revoked"

    def verify(chain, public_key, challenge):
        verdict = verify_android_attestation(chain, public_key=public_key, challenge=challenge, roots=roots)
        return {"attestation": "android", "attestation_security_level": verdict.security_level} if verdict.ok else verdict.reason

    station._enrollment = EnrollmentService(
        identity, station.ca.certificate, host=host, port=int(settings.get("port", 8443)),
        registry=BindingRegistry(lifetime_seconds=minutes * 60), limits=limits,
        hooks=Hooks(audit=audit, is_revoked=is_revoked, verify_attestation=verify)).start()
    return station._enrollment
