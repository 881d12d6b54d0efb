"""Certification path validation (RFC 5280 §6) with policy processing and revocation.

Built on pyhanko-certvalidator: this module only configures it from a trust profile and
maps its outcome to the station's reason codes.

Revocation modes (trust profile ``revocation``):

- ``crl``: every certificate on the path is checked against its CRL distribution point.
- ``ocsp``: the certificate being validated must have a good, verifiable answer from its
  OCSP responder; a CRL cannot stand in for it. CA certificates and the responder's own
  certificate (unless it carries id-pkix-ocsp-nocheck) are checked by CRL or OCSP: a
  responder cannot vouch for itself, and PIV CAs name no responder. (pyhanko applies one
  rule to every end-entity certificate, the responder's included, so the path is
  validated with "CRL or OCSP" and the OCSP answer for the certificate is then required
  separately with pyhanko's own RFC 6960 response verification.)
- ``ocsp-then-crl``: OCSP or CRL, whichever gives an answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext, errors
from pyhanko_certvalidator.revinfo.validate_ocsp import verify_ocsp_response
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    PKIXValidationParams,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)

from station.validation.fetch import DiskCache, make_fetchers
from station.validation.trust import TrustProfile

log = logging.getLogger(__name__)

_RULES = {
    "crl": (RevocationCheckingRule.CRL_REQUIRED, RevocationCheckingRule.CRL_REQUIRED),
    # The OCSP requirement of ocsp mode is checked after path validation (see above).
    "ocsp": (
        RevocationCheckingRule.CRL_OR_OCSP_REQUIRED,
        RevocationCheckingRule.CRL_OR_OCSP_REQUIRED,
    ),
    "ocsp-then-crl": (
        RevocationCheckingRule.CRL_OR_OCSP_REQUIRED,
        RevocationCheckingRule.CRL_OR_OCSP_REQUIRED,
    ),
}


@dataclass
class PathResult:
    """Outcome of validating one certificate. ``reason`` is a reason code or ``None``."""

    reason: str | None
    detail: str = ""
    path: list[asn1_x509.Certificate] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.reason is None


class PathValidator:
    """Validates certificates against one trust profile; shares fetched data between calls."""

    def __init__(self, profile: TrustProfile, *, cache_dir: Path | None, now: datetime | None = None):
        self.profile = profile
        self.now = now
        self.fetchers = make_fetchers(profile, cache_dir)
        self.crl_cache = cache_dir
        self.anchors = [asn1_x509.Certificate.load(der) for der in profile.anchors]
        ee_rule, ca_rule = _RULES[profile.revocation]
        self.revinfo_policy = CertRevTrustPolicy(RevocationCheckingPolicy(ee_rule, ca_rule))

    def validate(
        self,
        cert_der: bytes,
        *,
        policies: frozenset[str] = frozenset(),
        intermediates: list[bytes] = (),
        extended_key_usage: set[str] | None = None,
        moment: datetime | None = None,
    ) -> PathResult:
        """Validate ``cert_der`` at ``moment`` (default: the validator's ``now`` or the
        current time). ``policies``: acceptable policy OIDs (empty: any policy).

        In CRL mode a successful result is remembered (see :class:`ResultCache`) and reused
        while it cannot differ from a new validation."""
        moment = moment or self.now
        key = None
        if self.profile.revocation == "crl" and self.crl_cache is not None:
            key = RESULTS.key(self.profile, cert_der, policies, intermediates, extended_key_usage, moment, self.crl_cache)
            hit = RESULTS.get(key, self.crl_cache)
            if hit is not None:
                return hit
        result = self._validate(cert_der, policies=policies, intermediates=intermediates,
                                extended_key_usage=extended_key_usage, moment=moment)
        if key is not None and result.ok:
            RESULTS.put(key, result, self.fetchers.crl_fetcher, self.profile)
        return result

    def _validate(self, cert_der: bytes, *, policies, intermediates, extended_key_usage, moment) -> PathResult:
        try:
            cert = asn1_x509.Certificate.load(cert_der)
            cert.native  # parse everything now
            others = [asn1_x509.Certificate.load(d) for d in intermediates]
        except (ValueError, TypeError) as exc:
            return PathResult("cert-invalid", f"certificate does not parse: {exc}")
        context = ValidationContext(
            trust_roots=self.anchors,
            other_certs=others,
            moment=moment or datetime.now(timezone.utc),  # validate() resolved self.now
            allow_fetching=True,
            fetchers=self.fetchers,
            revinfo_policy=self.revinfo_policy,
        )
        params = (
            PKIXValidationParams(user_initial_policy_set=frozenset(policies), initial_explicit_policy=True)
            if policies
            else None
        )
        validator = CertificateValidator(cert, validation_context=context, pkix_params=params)
        try:
            path = asyncio.run(self._run(validator, cert, context, extended_key_usage))
        except errors.RevokedError as exc:
            return PathResult("cert-revoked", exc.failure_msg)
        except errors.ExpiredError as exc:
            return PathResult("cert-expired", exc.failure_msg)
        except errors.NotYetValidError as exc:
            return PathResult("cert-not-yet-valid", exc.failure_msg)
        except errors.InsufficientRevinfoError as exc:
            return PathResult("revocation-unknown", exc.failure_msg)
        except errors.OCSPValidationError as exc:
            return PathResult("revocation-unknown", f"no usable OCSP answer for the certificate: {_ocsp_failures(exc)}")
        except errors.PathValidationError as exc:
            reason = "policy" if "polic" in exc.failure_msg.lower() else "cert-invalid"
            return PathResult(reason, exc.failure_msg)
        except errors.ValidationError as exc:
            return PathResult("cert-invalid", exc.failure_msg)
        except errors.PathBuildingError as exc:
            return PathResult("cert-invalid", f"no path to a trust anchor: {exc}")
        except (ValueError, TypeError, KeyError) as exc:
            # asn1crypto raises these on malformed extensions deep inside validation.
            return PathResult("cert-invalid", f"malformed certificate data: {exc}")
        except Exception as exc:  # noqa: BLE001 - hostile input must not crash the station
            log.exception("path validation failed unexpectedly")
            return PathResult("cert-invalid", f"path validation failed: {type(exc).__name__}: {exc}")
        problem = _profile_problem(path)
        if problem:
            return PathResult("cert-invalid", problem, list(path))
        anchor = _anchor_time_problem(path, context.moment)
        if anchor:
            return PathResult(anchor[0], anchor[1], list(path))
        return PathResult(None, "valid", list(path))

    async def _run(self, validator, cert, context, extended_key_usage):
        path = await validator.async_validate_usage(set(), extended_key_usage=extended_key_usage)
        if self.profile.revocation == "ocsp":
            await verify_ocsp_response(cert, path, context)
        return path


def _ocsp_failures(exc: Exception) -> str:
    """The reasons pyhanko gives per OCSP response (its headline names the wrong
    certificate when called outside path validation)."""
    failures = getattr(exc, "failures", None) or []
    messages = [f[0] if isinstance(f, tuple) else str(f) for f in failures]
    return "; ".join(dict.fromkeys(messages)) or str(exc)


def _profile_problem(path) -> str | None:
    """Encoding rules pyhanko leaves alone, checked on every certificate of the path but
    the trust anchor:

    - RFC 5280 §4.1.2.5: validity dates through 2049 MUST be UTCTime.
    - FPKI certificate profiles (Common Policy CA profile): a CA certificate's keyUsage
      is critical (RFC 5280 §4.2.1.3 only says SHOULD).
    """
    for index, cert in enumerate(path.iter_certs(include_root=False)):
        validity = cert["tbs_certificate"]["validity"]
        for field_name in ("not_before", "not_after"):
            value = validity[field_name]
            if value.name == "general_time" and value.native.year < 2050:
                return f"certificate {index + 1} of the path encodes {field_name} before 2050 as GeneralizedTime"
        if cert.ca and cert.key_usage_value is not None and "key_usage" not in cert.critical_extensions:
            return f"CA certificate {index + 1} of the path has a non-critical keyUsage"
    return None


def _anchor_time_problem(path, moment: datetime) -> tuple[str, str] | None:
    """RFC 5280 §6.1.1 (d) treats a trust anchor as a name and a key, so pyhanko does not
    look at its validity period. The station does not rely on a self-signed anchor
    certificate outside its own validity period (as OpenSSL does not)."""
    root = path.trust_anchor
    cert = getattr(root, "certificate", None) if root is not None else None
    if cert is None:
        return None
    validity = cert["tbs_certificate"]["validity"]
    if moment < validity["not_before"].native:
        return "cert-not-yet-valid", f"the trust anchor is not valid until {validity['not_before'].native:%Y-%m-%d}"
    if moment > validity["not_after"].native:
        return "cert-expired", f"the trust anchor expired {validity['not_after'].native:%Y-%m-%d}"
    return None


class ResultCache:
    """Successful CRL-mode validations, reused while a new validation could not differ.

    A hit needs the same certificate, intermediates, policies, EKU, moment and profile
    (anchors, mode), byte-identical CRLs in the station's CRL cache for every CRL that was
    used, and the current time before every such CRL's ``nextUpdate`` (and its cache age
    limit) and inside every path certificate's validity. That is exactly the condition under
    which the CRL fetcher would hand the validator the same CRLs again. Failures are never
    cached; OCSP modes are not cached (their answers are fetched every time). Bounded LRU.
    """

    MAX_ENTRIES = 512

    def __init__(self):
        self._entries: "OrderedDict[bytes, tuple[PathResult, datetime, datetime, dict[str, bytes]]]" = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(profile, cert_der, policies, intermediates, eku, moment, cache_dir) -> bytes:
        h = hashlib.sha256()
        for part in (cert_der, *intermediates, *profile.anchors):
            h.update(hashlib.sha256(part).digest())
        h.update("|".join([profile.revocation, *sorted(policies), "eku", *sorted(eku or ()),
                           moment.isoformat() if moment else "now", str(cache_dir)]).encode())
        return h.digest()

    def get(self, key: bytes, cache_dir: Path) -> PathResult | None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            return None
        result, not_before, valid_until, crl_digests = entry
        now = datetime.now(timezone.utc)
        if not not_before <= now < valid_until:
            return None
        disk = DiskCache(cache_dir, ".crl")
        for url, digest in crl_digests.items():
            data, _ = disk.read(url)
            if data is None or hashlib.sha256(data).digest() != digest:
                return None
        with self._lock:
            self._entries.move_to_end(key)
        return result

    def put(self, key: bytes, result: PathResult, crl_fetcher, profile) -> None:
        certs = list(result.path)
        if not certs:
            return
        not_before = max(c["tbs_certificate"]["validity"]["not_before"].native for c in certs)
        valid_until = min(c["tbs_certificate"]["validity"]["not_after"].native for c in certs)
        digests: dict[str, bytes] = {}
        for url, certificate_list in crl_fetcher.crls_by_url().items():
            next_update = certificate_list["tbs_cert_list"]["next_update"].native
            if next_update is None:
                return  # a CRL without nextUpdate: nothing bounds the answer
            _, fetched_at = crl_fetcher.cache.read(url)
            if profile.crl_max_age_hours > 0:
                next_update = min(next_update, fetched_at + timedelta(hours=profile.crl_max_age_hours))
            valid_until = min(valid_until, next_update)
            digests[url] = hashlib.sha256(certificate_list.dump()).digest()
        with self._lock:
            self._entries[key] = (result, not_before, valid_until, digests)
            self._entries.move_to_end(key)
            while len(self._entries) > self.MAX_ENTRIES:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


RESULTS = ResultCache()
