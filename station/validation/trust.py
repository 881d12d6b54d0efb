"""Trust profiles: what the station trusts and how it checks revocation.

A trust profile is a TOML file (see ``station/resources/trust-profiles/federal-common.toml``
for a commented example)::

    name = "icam-test"
    anchors = ["../shared/icam-test-pki/pki/roots/00_ICAM_Test_Card_Root_CA.crt"]
    piv_auth_policies = ["2.16.840.1.101.3.2.1.48.11"]
    card_auth_policies = ["2.16.840.1.101.3.2.1.48.13"]
    content_signer_policies = []          # empty: any policy
    revocation = "ocsp-then-crl"          # ocsp | crl | ocsp-then-crl
    fetch_timeout = 5                     # seconds a request may wait for the server
    verification_deadline = 30            # seconds for all fetches of one verification
    failed_url_retry = 60                 # seconds a URL that failed is not asked again
    offline = false                       # true: never fetch a URL the url_map does not cover;
                                          # false: any host but loopback/link-local ones

    [crl_cache]
    max_age_hours = 24                    # refetch a CRL fetched longer ago than this,
                                          # even before its nextUpdate (0: by nextUpdate only)

    [url_map]
    "http.apl-test.cite.fpki-lab.gov" = "http://127.0.0.1:8080"

Anchor paths are relative to the profile file. Policy OIDs are those the relying party
accepts (RFC 5280 §6.1.1 (c) user-initial-policy-set, with initial-explicit-policy set).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from station.errors import StationError

REVOCATION_MODES = ("ocsp", "crl", "ocsp-then-crl")


class TrustProfileError(StationError):
    code = "bad-profile"
    hint = "fix the trust profile (see docs/validation.md)"


@dataclass(frozen=True)
class TrustProfile:
    name: str
    anchors: tuple[bytes, ...]  # DER certificates
    piv_auth_policies: frozenset[str]
    card_auth_policies: frozenset[str] = frozenset()
    content_signer_policies: frozenset[str] = frozenset()
    revocation: str = "ocsp-then-crl"
    crl_max_age_hours: float = 24.0
    fetch_timeout: float = 5.0
    verification_deadline: float = 30.0
    failed_url_retry: float = 60.0
    offline: bool = False
    url_map: dict[str, str] = field(default_factory=dict)
    source: Path | None = None

    @classmethod
    def load(cls, path: str | Path) -> "TrustProfile":
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise TrustProfileError(f"cannot read trust profile {path}: {exc}") from exc
        return cls.from_dict(data, base=path.resolve().parent, source=path)

    @classmethod
    def from_dict(cls, data: dict, *, base: Path, source: Path | None = None) -> "TrustProfile":
        anchors = tuple(_load_anchor(base / str(a)) for a in _list(data, "anchors"))
        if not anchors:
            raise TrustProfileError("a trust profile needs at least one anchor")
        piv_policies = _oids(data, "piv_auth_policies")
        if not piv_policies:
            raise TrustProfileError("piv_auth_policies must name at least one policy OID")
        revocation = data.get("revocation", "ocsp-then-crl")
        if revocation not in REVOCATION_MODES:
            raise TrustProfileError(f"revocation must be one of {', '.join(REVOCATION_MODES)}")
        url_map = data.get("url_map", {})
        if not isinstance(url_map, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in url_map.items()
        ):
            raise TrustProfileError("url_map maps host names to base URLs (strings)")
        cache = data.get("crl_cache", {})
        if not isinstance(cache, dict):
            raise TrustProfileError("crl_cache must be a table: [crl_cache] max_age_hours = 24")
        try:
            seconds = {key: _seconds(data, key, default) for key, default in (
                ("fetch_timeout", 5), ("verification_deadline", 30), ("failed_url_retry", 60))}
            return cls(
                name=str(data.get("name", source.stem if source else "profile")),
                anchors=anchors,
                piv_auth_policies=piv_policies,
                card_auth_policies=_oids(data, "card_auth_policies"),
                content_signer_policies=_oids(data, "content_signer_policies"),
                revocation=revocation,
                crl_max_age_hours=_number(cache, "max_age_hours", 24, minimum=0),
                **seconds,
                offline=bool(data.get("offline", False)),
                url_map={k.lower(): v.rstrip("/") for k, v in url_map.items()},
                source=source,
            )
        except (TypeError, ValueError) as exc:
            raise TrustProfileError(f"bad value in trust profile: {exc}") from exc

    def with_revocation(self, mode: str) -> "TrustProfile":
        if mode not in REVOCATION_MODES:
            raise TrustProfileError(f"revocation must be one of {', '.join(REVOCATION_MODES)}")
        return replace(self, revocation=mode)

    def map_url(self, url: str) -> str | None:
        """The URL to fetch for ``url`` named in a certificate; ``None`` when offline and
        the host is not mapped (the station then has no way to reach it)."""
        parts = urlsplit(url)
        base = self.url_map.get((parts.hostname or "").lower())
        if base is None:
            return None if self.offline else url
        path = parts.path or "/"
        return base + path + (f"?{parts.query}" if parts.query else "")

    def maps(self, url: str) -> bool:
        """Whether the url_map names the host of ``url`` (the administrator chose where it goes)."""
        return (urlsplit(url).hostname or "").lower() in self.url_map


def _seconds(data: dict, key: str, default: float) -> float:
    """A number of seconds above 0 and at most an hour."""
    value = _number(data, key, default)
    if value > 3600:
        raise TrustProfileError(f"{key} must be at most 3600 seconds, not {value!r}")
    return value


def _list(data: dict, key: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TrustProfileError(f"{key} must be a list of strings")
    return value


def _oids(data: dict, key: str) -> frozenset[str]:
    """A list of policy OIDs in dotted form (RFC 5280 §4.2.1.4)."""
    values = _list(data, key)
    for value in values:
        try:
            x509.ObjectIdentifier(value)
        except ValueError:
            raise TrustProfileError(f"{key}: {value!r} is not a policy OID such as 2.16.840.1.101.3.2.1.3.13") from None
    return frozenset(values)


def _number(data: dict, key: str, default: float, *, minimum: float | None = None) -> float:
    """A number of seconds or hours: above 0, or at least ``minimum``."""
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TrustProfileError(f"{key} must be a number, not {value!r}")
    if (value < minimum) if minimum is not None else (value <= 0):
        raise TrustProfileError(f"{key} must be {'at least %g' % minimum if minimum is not None else 'above 0'}, not {value!r}")
    return float(value)


def _load_anchor(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TrustProfileError(f"cannot read trust anchor {path}: {exc.strerror}") from exc
    try:
        if b"-----BEGIN" in data:
            cert = x509.load_pem_x509_certificate(data)
        else:
            cert = x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise TrustProfileError(f"trust anchor {path} is not a certificate") from exc
    return cert.public_bytes(Encoding.DER)
