"""Step 7, the functional test: the new credential works (SP 800-157 "test system").

Log in with the new PIN and sign a fresh challenge; verify the signature with the issued
certificate; check the certificate chains to the derived PIV CA, is within its validity, and
carries the expected policy OID.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes

from station.issuance.targets.base import Target
from station.signatures import verify_signature


@dataclass
class SelfTestResult:
    passed: bool
    checks: dict[str, bool] = field(default_factory=dict)
    detail: str = ""

    def finish(self) -> SelfTestResult:
        """Passed when every check passed; the detail names the failed ones."""
        failed = [name for name, ok in self.checks.items() if not ok]
        self.passed, self.detail = not failed, f"failed: {', '.join(failed)}" if failed else "all checks passed"
        return self

    @property
    def label(self) -> str:
        return "pass" if self.passed else "fail"


def run(target: Target, pin: str, certificate: x509.Certificate, ca_certificate: x509.Certificate,
        policy_oid: str, *, now: dt.datetime | None = None) -> SelfTestResult:
    """The station's own test of a token: a fresh challenge signed with the new PIN, then the
    certificate checks."""
    challenge = os.urandom(32)
    try:
        verify_signature(certificate.public_key(), target.sign_challenge(pin, challenge), challenge, hashes.SHA256())
        signed = True
    except InvalidSignature:
        signed = False
    return check_certificate(certificate, ca_certificate, policy_oid, possession=signed, now=now).finish()


def check_certificate(certificate: x509.Certificate, ca_certificate: x509.Certificate, policy_oid: str, *,
                      possession: bool, now: dt.datetime | None = None) -> SelfTestResult:
    """The checks of a credential whose key proved possession (``possession``: a signature
    over the station's challenge, or a TLS handshake with it as client certificate): chain to
    the derived PIV CA, validity, policy. The caller may add checks, then :meth:`SelfTestResult.finish`."""
    now = now or dt.datetime.now(dt.timezone.utc)
    checks: dict[str, bool] = {"signature": possession}
    try:
        certificate.verify_directly_issued_by(ca_certificate)
        checks["chain"] = True
    except (ValueError, TypeError, InvalidSignature):
        checks["chain"] = False
    checks["validity"] = certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc
    try:
        policies = certificate.extensions.get_extension_for_class(x509.CertificatePolicies).value
        checks["policy"] = any(p.policy_identifier.dotted_string == policy_oid for p in policies)
    except x509.ExtensionNotFound:
        checks["policy"] = False
    return SelfTestResult(False, checks)
