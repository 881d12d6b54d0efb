"""Witnesses no one here wrote: zbarimg reads the QR code the station writes; openssl and curl
enroll from the payload alone (the README's worked example, run as written); openssl reads
the EST answers (PKCS#7 certs-only, csrattrs)."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

from station.enrollment import qr

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "enroll-openssl-curl.sh"
AAL2 = "2.16.840.1.101.3.2.1.3.40"


def test_zbarimg_decodes_the_png_the_station_writes(tmp_path):
    uri = qr.EnrollmentPayload("https://192.0.2.7:8443/.well-known/est/r12-0a1b2c3d/", "ab" * 32, "request-12",
                               "n5xq2d7kq3rj6o4wz4iyb2hd5e", 1796209222).uri()
    (tmp_path / "qr.png").write_bytes(qr.png(uri))
    done = subprocess.run(["zbarimg", "--raw", "-q", str(tmp_path / "qr.png")], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.strip() == uri
    assert qr.EnrollmentPayload.parse(done.stdout) == qr.EnrollmentPayload.parse(uri)


def test_openssl_and_curl_enroll_activate_and_self_test(start_issue, tmp_path):
    issue = start_issue("2")
    payload = issue.payload()
    done = subprocess.run(["bash", str(EXAMPLE), payload.uri(), str(tmp_path / "curl")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr + "".join(issue.stderr)
    activated, selftest = (json.loads(line) for line in done.stdout.splitlines() if line.strip())
    assert activated == {"activated": True}
    assert selftest["passed"] is True and selftest["policy_oid"] == AAL2
    assert set(selftest["checks"]) == {"signature", "chain", "validity", "policy", "not_revoked"}
    code, out = issue.outcome()
    assert code == 0 and out["state"] == "issued" and out["credential"]["serial"] == selftest["serial"]
    # the certificate names the applicant from PKI-AUTH, not the request's CN=phone
    subject = subprocess.run(["openssl", "x509", "-in", str(tmp_path / "curl" / "cert.pem"), "-noout", "-subject"],
                             capture_output=True, text=True).stdout
    assert "ICAM Test Card" in subject and "phone" not in subject


def test_openssl_reads_cacerts_and_csrattrs(start_issue, tmp_path):
    issue = start_issue("2")
    payload = issue.payload()
    tls = tmp_path / "tls.pem"
    hostport = payload.est.split("/")[2]
    pem = subprocess.run(f"openssl s_client -connect {hostport} </dev/null 2>/dev/null | openssl x509",
                         shell=True, capture_output=True, text=True, timeout=30).stdout
    tls.write_text(pem)
    for path, check in (("cacerts", ["openssl", "pkcs7", "-inform", "DER", "-print_certs", "-noout"]),
                        ("csrattrs", ["openssl", "asn1parse", "-inform", "DER"])):
        body = subprocess.run(["curl", "-sS", "--fail", "--cacert", str(tls), "-D", str(tmp_path / "h"), payload.est + path],
                              capture_output=True, timeout=30)
        assert body.returncode == 0, body.stderr
        headers = (tmp_path / "h").read_text().lower()
        parsed = subprocess.run(check, input=base64.b64decode(body.stdout), capture_output=True, timeout=30)
        assert parsed.returncode == 0, parsed.stderr
        if path == "cacerts":
            assert "content-type: application/pkcs7-mime" in headers and b"subject=" in parsed.stdout
        else:
            assert "application/csrattrs" in headers
            assert b"ecdsa-with-SHA256" in parsed.stdout and b"prime256v1" in parsed.stdout
