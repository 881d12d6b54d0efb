"""End to end: the golden GSA card over pcscd, `station issue --target phone`, the reference
phone client enrolling from the QR code PNG (decoded by zbarimg)."""

from __future__ import annotations

import json
import time

from station.enrollment.qr import EnrollmentPayload
from tests.phone.conftest import PHONE_PIN, phone

AAL2, AAL3 = "2.16.840.1.101.3.2.1.3.40", "2.16.840.1.101.3.2.1.3.41"


def test_phone_enrolls_at_aal2_from_the_png(start_issue, tmp_path):
    issue = start_issue("2")
    payload = issue.payload()
    png = issue.proc.args[issue.proc.args.index("--qr-out") + 1]
    done = phone(["--qr", png, "--pin", PHONE_PIN, "--store", str(tmp_path / "phone"), "--json"])
    assert done.returncode == 0, done.stdout + done.stderr + "".join(issue.stderr)
    result = json.loads(done.stdout)
    assert result["policy_oid"] == AAL2 and result["selftest"] == "pass"
    code, out = issue.outcome()
    assert code == 0, "".join(issue.stderr)
    assert out["state"] == "issued" and out["selftest"] == "pass" and out["credential"]["serial"] == result["serial"]
    assert out["credential"]["policy_oid"] == AAL2
    assert payload.otp not in (tmp_path / "phone" / "key.pem").read_text()
    for secret in (PHONE_PIN,):
        assert secret not in "".join(issue.stderr)


def test_phone_enrolls_at_aal3_with_a_verified_attestation(start_issue, tmp_path):
    issue = start_issue("3")
    payload = issue.payload()
    done = phone(["--payload", payload.uri(), "--pin", PHONE_PIN, "--store", str(tmp_path / "phone"),
                  "--aal3-test-attestation", "--json"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["policy_oid"] == AAL3
    code, out = issue.outcome()
    assert code == 0 and out["credential"]["policy_oid"] == AAL3, "".join(issue.stderr)


def test_aal3_without_attestation_is_refused_then_an_attested_phone_enrolls(start_issue, tmp_path):
    issue = start_issue("3")
    payload = issue.payload()
    refused = phone(["--payload", payload.uri(), "--pin", PHONE_PIN, "--store", str(tmp_path / "a"), "--json"])
    assert refused.returncode == 1 and "HTTP 403" in refused.stderr and "attestation" in refused.stderr
    done = phone(["--payload", payload.uri(), "--pin", PHONE_PIN, "--store", str(tmp_path / "b"), "--aal3-test-attestation"])
    assert done.returncode == 0, done.stderr
    code, out = issue.outcome()
    assert code == 0 and out["credential"]["policy_oid"] == AAL3


def test_the_client_refuses_a_station_whose_certificate_is_not_pinned(start_issue, tmp_path):
    issue = start_issue("2")
    payload = issue.payload()
    wrong = EnrollmentPayload(payload.est, "0" * 64, payload.user, payload.otp, payload.exp)
    done = phone(["--payload", wrong.uri(), "--pin", PHONE_PIN, "--store", str(tmp_path / "x")])
    assert done.returncode == 1 and "not the station the QR code names" in done.stderr
    assert not (tmp_path / "x").exists()  # nothing made, nothing sent
    ok = phone(["--payload", payload.uri(), "--pin", PHONE_PIN, "--store", str(tmp_path / "phone")])
    assert ok.returncode == 0, ok.stderr  # the code was not spent by the refused attempt
    assert issue.outcome()[0] == 0


def test_an_expired_code_ends_the_wait_and_the_request_can_be_resumed_with_a_new_code(start_issue, phone_home, pcscd,
                                                                                      sqlite_station, tmp_path):
    config = sqlite_station.home.load_config()
    config["enrollment"]["code_minutes"] = 0.05  # three seconds
    sqlite_station.home.save_config(config)
    issue = start_issue("2")
    payload = issue.payload()
    code, out = issue.outcome()
    assert code == 1 and out["error"] == "target.request_timeout" and "expired" in out["message"]
    assert "requests resume" in out["hint"] and time.time() >= payload.exp
    config["enrollment"]["code_minutes"] = 10
    sqlite_station.home.save_config(config)
    resumed = start_issue(resume=out["request_id"])
    fresh = resumed.payload()
    assert fresh.otp != payload.otp and fresh.est != payload.est  # a new label and secret for the same request
    done = phone(["--payload", fresh.uri(), "--pin", PHONE_PIN, "--store", str(tmp_path / "phone")])
    assert done.returncode == 0, done.stderr + "".join(resumed.stderr)
    code, out = resumed.outcome()
    assert code == 0 and out["state"] == "issued" and out["request_id"] == 1