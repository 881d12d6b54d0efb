"""Abuse of the enrollment service of a running `station issue --target phone`: each attempt is
refused as RFC 7030 and the issue say, audited, and the service still serves the legitimate
phone afterwards (which then completes the issuance)."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
import threading
import time
from urllib.parse import urlsplit

from asn1crypto import csr as asn1_csr
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from station.enrollment.qr import EnrollmentPayload
from station.phone.client import PinnedEst
from tests.phone.conftest import STATION, PHONE_PIN

AAL2 = "2.16.840.1.101.3.2.1.3.40"


def csr_der(key=None) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "phone")])).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.DER), key


def enroll_call(est: PinnedEst, payload: EnrollmentPayload, body: bytes, *, user=None, otp=None, path="simpleenroll"):
    auth = base64.b64encode(f"{user or payload.user}:{otp or payload.otp}".encode()).decode()
    return est.call("POST", path, body, {"Content-Type": "application/pkcs10", "Authorization": f"Basic {auth}"})


def signed_by_another_key() -> bytes:
    """A request naming one key, signed by another (no proof of possession)."""
    mine, _ = csr_der()
    other, _ = csr_der()
    forged = asn1_csr.CertificationRequest.load(mine)
    forged["signature"] = asn1_csr.CertificationRequest.load(other)["signature"]
    return forged.dump()


def slow_client(hostport: str, closed: dict) -> None:
    """Sends a request's headers one byte a second; records when the server hangs up."""
    host, port = hostport.rsplit(":", 1)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    start = time.monotonic()
    with context.wrap_socket(socket.create_connection((host, int(port)), timeout=30)) as sock:
        try:
            for byte in b"POST /.well-known/est/x/simpleenroll HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"a" * 100:
                sock.sendall(bytes([byte]))
                time.sleep(1)
            closed["after"] = None
        except OSError:
            closed["after"] = time.monotonic() - start


def test_abuse_is_refused_and_the_phone_is_still_served(start_issue, phone_home, tmp_path):
    issue = start_issue("2")
    payload = issue.payload()
    est = PinnedEst(payload)
    hostport = urlsplit(payload.est).netloc
    slow: dict = {}
    slowloris = threading.Thread(target=slow_client, args=(hostport, slow), daemon=True)
    slowloris.start()

    good, _ = csr_der()
    body = base64.encodebytes(good)
    status, _, _ = enroll_call(est, payload, body, otp="a" * 26)
    assert status == 401  # wrong secret
    status, _, _ = enroll_call(est, payload, body, user="request-999")
    assert status == 401  # wrong user
    other_label = EnrollmentPayload(payload.est.replace(payload.est.split("/")[-2], "r1-00000000"), payload.fp, payload.user,
                                    payload.otp, payload.exp)
    assert enroll_call(PinnedEst(other_label), other_label, body)[0] == 401  # no such label
    status, _, reason = enroll_call(est, payload, base64.encodebytes(signed_by_another_key()))
    assert status == 400 and b"signature" in reason
    weak, _ = csr_der(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    status, _, reason = enroll_call(est, payload, base64.encodebytes(weak))
    assert status == 400 and b"P-256" in reason  # a key type the station does not certify
    status, _, _ = enroll_call(est, payload, b"A" * 100_000)
    assert status == 413  # over [enrollment] max_body_bytes
    status, _, reason = enroll_call(est, payload, b"not base64 at all!")
    assert status == 400
    status, _, _ = est.call("POST", "simpleenroll", body, {"Content-Type": "text/plain", "Authorization": "Basic " +
                            base64.b64encode(f"{payload.user}:{payload.otp}".encode()).decode()})
    assert status == 415

    # while the slow client dribbles, the service answers others at once
    started = time.monotonic()
    assert est.call("GET", "cacerts")[0] == 200 and time.monotonic() - started < 2

    # fifty phones at once with the right code: exactly one gets the certificate
    barrier, answers = threading.Barrier(50), []
    keys = [csr_der() for _ in range(50)]

    def attempt(i: int) -> None:
        barrier.wait()
        answers.append((i, *enroll_call(PinnedEst(payload), payload, base64.encodebytes(keys[i][0]))))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [(i, reply) for i, status, _, reply in answers if status == 200]
    assert len(answers) == 50 and len(winners) == 1
    assert sorted(status for _, status, _, _ in answers).count(401) == 49

    # the winner is the legitimate phone: store, activate and self-test over mutual TLS
    i, reply = winners[0]
    cert = pkcs7.load_der_pkcs7_certificates(base64.b64decode(reply))[0]
    key_path, cert_path = tmp_path / "key.pem", tmp_path / "cert.pem"
    key_path.write_bytes(keys[i][1].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.BestAvailableEncryption(PHONE_PIN.encode())))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    assert est.call("POST", "selftest", b"{}", credential=(cert_path, key_path, PHONE_PIN))[0] == 409  # not activated yet
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    stranger_cert = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                                    "-keyout", str(stranger / "k.pem"), "-subj", "/CN=x", "-out", str(stranger / "c.pem")],
                                   capture_output=True)
    assert stranger_cert.returncode == 0
    try:  # a certificate the derived PIV CA did not issue does not pass the TLS handshake
        est.call("POST", "activate", b"{}", credential=(stranger / "c.pem", stranger / "k.pem", ""))
        assert False, "a stranger's certificate was accepted"
    except Exception as exc:  # noqa: BLE001
        assert "cannot be reached" in str(exc)
    assert est.call("POST", "activate", b"{}", credential=(cert_path, key_path, PHONE_PIN))[0] == 200
    status, _, result = est.call("POST", "selftest", b"{}", credential=(cert_path, key_path, PHONE_PIN))
    assert status == 200 and json.loads(result)["passed"] is True
    code, out = issue.outcome()
    assert code == 0 and out["state"] == "issued" and out["credential"]["policy_oid"] == AAL2

    slowloris.join(15)
    assert slow.get("after") is not None and slow["after"] < 6  # hung up on after [enrollment] header_seconds (2)

    # every refused attempt is in the audit trail (the 49 losers replayed a spent secret), never the secret
    exported = subprocess.run([*STATION, "audit", "export", "--home", str(phone_home)], capture_output=True, text=True,
                              timeout=60)
    events = [json.loads(line) for line in exported.stdout.splitlines()]
    details = [e["details_json"] for e in events if e.get("action") == "enrollment.refused"]
    reasons = [d.get("reason") for d in details]
    assert reasons.count("wrong-secret") == 2 and reasons.count("unknown-label") == 1 and reasons.count("spent") == 49
    assert payload.otp not in exported.stdout
