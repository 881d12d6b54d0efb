"""`make demo` runs `station demo`: the station's own windows over the embedded demo world (an
in-process reader with the GSA golden card, a SoftHSM token, the phone's enrollment service, the
ICAM test PKI on loopback). Without a display, scripted people drive the same windows offscreen
through one issuance per target: the token, then the phone (the reference phone client reading
the QR code off the screen)."""

import json
import os
import re
import subprocess
import sys

SECRETS = ("246810", "73915824", "55667788", "registrar passphrase", "supervisor passphrase")


def demo(*args, cwd, env=None, timeout=240):
    environ = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM",
                                                                 "PCSCLITE_CSOCK_NAME")}
    environ["PCSCLITE_CSOCK_NAME"] = "/nonexistent/pcscd.comm"  # no pcscd: the reader is in process
    return subprocess.run([sys.executable, "-m", "station", "demo", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**environ, **(env or {})})


def test_the_headless_demo_issues_through_the_windows_and_says_so_in_json(tmp_path):
    result = demo("--headless", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)
    assert [r["target_kind"] for r in results] == ["pkcs11", "phone"]
    for request_id, issued in enumerate(results, 1):
        assert set(issued) == {"target_kind", "request_id", "state", "serial", "policy_oid", "selftest"}
        assert issued["state"] == "issued" and issued["selftest"] == "pass" and issued["request_id"] == request_id
        assert issued["policy_oid"] == "2.16.840.1.101.3.2.1.3.40"  # id-fpki-common-derived-pivAuth (AAL2)
        assert re.fullmatch(r"[0-9a-f]{16,40}", issued["serial"])
    assert results[0]["serial"] != results[1]["serial"]
    assert result.stderr == ""  # nothing but the JSON, and no Qt noise
    for secret in SECRETS:
        assert secret not in result.stdout


def test_without_a_display_the_demo_tells_what_the_people_did_onto_a_piv_token_then_a_phone(tmp_path):
    result = demo("--target", "piv", cwd=tmp_path)  # no display in the environment: headless by itself
    assert result.returncode == 0, result.stderr
    out = result.stdout
    _, token, phone = out.split("registrar chooses “")
    assert token.startswith("PIV token") and phone.startswith("Applicant's phone")
    steps = [line.split("]")[0].strip(" [") for line in token.splitlines() if line.startswith("  [")]
    order = ["request", "approval", "pki-auth", "key-generation", "delivery", "activation", "self-test"]
    assert [s for i, s in enumerate(steps) if i == 0 or steps[i - 1] != s] == order
    assert "supervisor approves request 1 on the approval screen" in token
    assert "the applicant chooses the new PIN at the kiosk, twice" in token
    assert "new PIN" not in phone and "the applicant scans the code with the phone" in phone  # the PIN is set on the phone
    assert "  [phone] the certificate is on the phone" in phone and "  [phone] all checks passed" in phone
    *_, piv_line, phone_line = out.rstrip().splitlines()
    assert piv_line.startswith("piv-token: request 1 issued") and piv_line.endswith("self-test pass")
    assert phone_line.startswith("phone: request 2 issued") and phone_line.endswith("self-test pass")
    for secret in SECRETS:
        assert secret not in out + result.stderr


def test_the_phone_alone(tmp_path):
    result = demo("--headless", "--json", "--target", "phone", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (issued,) = json.loads(result.stdout)
    assert (issued["target_kind"], issued["request_id"], issued["state"], issued["selftest"]) == ("phone", 1, "issued", "pass")


def test_without_the_test_data_the_demo_says_what_is_missing(tmp_path):
    missing = tmp_path / "no-icam"
    result = demo("--icam", str(missing), "--headless", cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr == (f"station: no GSA ICAM test cards in {missing}/cards. "
                             "Pass --icam DIR naming the GSA ICAM test PKI folder (the one holding cards/ and pki/).\n")
