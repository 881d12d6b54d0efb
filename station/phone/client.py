"""The reference phone client: enrolls a derived PIV credential the way a phone app does.

1. Read the ``dpiv://enroll`` URI (from the QR code's PNG through ``zbarimg``, the camera's
   stand-in, or given as text).
2. Connect to the EST base over TLS and trust the server only when its certificate's SHA-256
   is the payload's ``fp`` (nothing is sent before that check).
3. Make a P-256 key (a phone: in its keystore; here: in memory), send its PKCS#10 request to
   ``simpleenroll`` with HTTP Basic ``user``:``otp`` (and, asked for, a test Android key
   attestation over the station's challenge), take the certificate from the PKCS#7 answer.
4. Store the key encrypted under the applicant's PIN (PKCS#8, ``DIR/key.pem``) beside the
   certificate (``DIR/cert.pem``), then report ``activate`` and ask for ``selftest`` over
   mutual TLS with the new credential.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.client
import json
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from station.enrollment.binding import attestation_challenge
from station.enrollment.qr import EnrollmentPayload, PayloadError
from station.enrollment.service import ATTESTATION_HEADER
from station.errors import Exit, StationError
from station.issuance.pin_policy import check_new_pin

TIMEOUT_SECONDS = 30


class PhoneError(StationError):
    """The station refused the phone, or answered what a phone cannot use."""

    class Code(str, Enum):
        REFUSED = "phone.refused"
        UNREACHABLE = "phone.unreachable"

    code = Code.REFUSED.value
    exit_code = Exit.REFUSED
    hint = "ask the registrar for a new code and scan it again"


class WrongServer(PhoneError):
    """The server's TLS certificate is not the one the QR code pins."""

    code = "phone.wrong_server"
    hint = "this is not the station that showed the code: scan the code on the station's own screen"


@dataclass(frozen=True)
class Enrolled:
    serial: str
    policy_oid: str
    selftest: dict

    def as_json(self) -> dict:
        return {"serial": self.serial, "policy_oid": self.policy_oid,
                "selftest": "pass" if self.selftest.get("passed") else "fail", "checks": self.selftest.get("checks", {})}


def read_qr(png: Path) -> str:
    """The QR code's text, decoded by ``zbarimg`` (ZBar, a decoder nobody here wrote)."""
    zbarimg = shutil.which("zbarimg")
    if zbarimg is None:
        raise PayloadError("zbarimg is not installed (Debian: zbar-tools)", hint="install zbar-tools, or give --payload")
    done = subprocess.run([zbarimg, "--raw", "-q", str(png)], capture_output=True, text=True, timeout=30)
    if done.returncode != 0 or not done.stdout.strip():
        raise PayloadError(f"no QR code could be read from {png}")
    return done.stdout.strip()


class PinnedEst:
    """HTTPS to the EST base, each connection checked against the pinned fingerprint."""

    def __init__(self, payload: EnrollmentPayload):
        self.payload = payload
        self.url = urlsplit(payload.est)

    def _context(self, credential: tuple[Path, Path, str] | None) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # trust comes from the pinned fingerprint, checked before any byte is sent
        if credential is not None:
            cert, key, pin = credential
            context.load_cert_chain(cert, key, password=pin)
        return context

    def call(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
             credential: tuple[Path, Path, str] | None = None) -> tuple[int, str, bytes]:
        conn = http.client.HTTPSConnection(self.url.hostname, self.url.port or 443, timeout=TIMEOUT_SECONDS,
                                           context=self._context(credential))
        try:
            conn.connect()
            presented = conn.sock.getpeercert(binary_form=True)
            if hashlib.sha256(presented or b"").hexdigest() != self.payload.fp:
                raise WrongServer(f"the server at {self.url.netloc} is not the station the QR code names "
                                  "(its TLS certificate fingerprint differs)")
            conn.request(method, self.url.path + path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.getheader("Content-Type", ""), response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise PhoneError(f"the station at {self.url.netloc} cannot be reached: {exc}",
                             code=PhoneError.Code.UNREACHABLE, hint="check the phone's network, then scan the code again") from None
        finally:
            conn.close()


def _refused(status: int, body: bytes, step: str) -> PhoneError:
    reason = body.decode(errors="replace").strip().splitlines()[0] if body.strip() else f"HTTP {status}"
    return PhoneError(f"the station refused {step} (HTTP {status}): {reason}")


def enroll(payload: EnrollmentPayload, *, pin: str, store: Path, test_attestation: bool = False) -> Enrolled:
    check_new_pin(pin, pin)
    est = PinnedEst(payload)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "phone")]))
           .sign(key, hashes.SHA256()))
    headers = {"Content-Type": "application/pkcs10", "Content-Transfer-Encoding": "base64",
               "Authorization": "Basic " + base64.b64encode(f"{payload.user}:{payload.otp}".encode()).decode()}
    if test_attestation:
        from station.enrollment.test_attestation import make_test_attestation

        chain = make_test_attestation(key.public_key(), attestation_challenge(payload.otp))
        headers[ATTESTATION_HEADER] = ",".join(base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
                                               for c in chain)
    status, _, body = est.call("POST", "simpleenroll", base64.encodebytes(csr.public_bytes(serialization.Encoding.DER)), headers)
    if status != 200:
        raise _refused(status, body, "the enrollment")
    try:
        certificates = pkcs7.load_der_pkcs7_certificates(base64.b64decode(body))
    except (ValueError, binascii.Error):
        raise PhoneError("the station's answer to the enrollment is not base64 PKCS#7 (RFC 7030 §4.2.3)") from None
    certificate = next((c for c in certificates if c.public_key() == key.public_key()), None)
    if certificate is None:
        raise PhoneError("the station's answer holds no certificate for the phone's key")
    store.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = store / "key.pem", store / "cert.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.BestAvailableEncryption(pin.encode())))
    key_path.chmod(0o600)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    credential = (cert_path, key_path, pin)
    status, _, body = est.call("POST", "activate", b"{}", {"Content-Type": "application/json"}, credential)
    if status != 200:
        raise _refused(status, body, "the activation")
    status, _, body = est.call("POST", "selftest", b"{}", {"Content-Type": "application/json"}, credential)
    if status != 200:
        raise _refused(status, body, "the self-test")
    try:
        result = json.loads(body)
    except ValueError:
        raise PhoneError("the station's self-test answer is not JSON") from None
    policies = certificate.extensions.get_extension_for_class(x509.CertificatePolicies).value
    return Enrolled(format(certificate.serial_number, "x"), policies[0].policy_identifier.dotted_string, result)


