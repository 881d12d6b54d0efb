"""`make demo` runs `station demo`: the station's own windows over the embedded demo world (an
in-process reader with the GSA golden card, a SoftHSM token, the ICAM test PKI on loopback).
Without a display, scripted people drive the same windows offscreen through one issuance."""

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
    assert [r["target_kind"] for r in results] == ["pkcs11"]
    (issued,) = results
    assert set(issued) == {"target_kind", "request_id", "state", "serial", "policy_oid", "selftest"}
    assert issued["state"] == "issued" and issued["selftest"] == "pass" and issued["request_id"] == 1
    assert issued["policy_oid"] == "2.16.840.1.101.3.2.1.3.40"  # id-fpki-common-derived-pivAuth (software: AAL2)
    assert re.fullmatch(r"[0-9a-f]{16,40}", issued["serial"])
    assert result.stderr == ""  # nothing but the JSON, and no Qt noise
    for secret in SECRETS:
        assert secret not in result.stdout


def test_without_a_display_the_demo_tells_what_the_people_did_onto_a_piv_token(tmp_path):
    result = demo("--target", "piv", cwd=tmp_path)  # no display in the environment: headless by itself
    assert result.returncode == 0, result.stderr
    out = result.stdout
    steps = [line.split("]")[0].strip(" [") for line in out.splitlines() if line.startswith("  [")]
    order = ["request", "approval", "pki-auth", "key-generation", "delivery", "activation", "self-test"]
    assert [s for i, s in enumerate(steps) if i == 0 or steps[i - 1] != s] == order
    assert "supervisor approves request 1 on the approval screen" in out
    assert "the applicant chooses the new PIN at the kiosk, twice" in out
    assert out.rstrip().endswith("self-test pass") and out.splitlines()[-1].startswith("piv-token: request 1 issued")
    for secret in SECRETS:
        assert secret not in out + result.stderr


def test_without_the_test_data_the_demo_says_what_is_missing(tmp_path):
    missing = tmp_path / "no-icam"
    result = demo("--icam", str(missing), "--headless", cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr == (f"station: no GSA ICAM test cards in {missing}/cards. "
                             "Pass --icam DIR naming the GSA ICAM test PKI folder (the one holding cards/ and pki/).\n")
