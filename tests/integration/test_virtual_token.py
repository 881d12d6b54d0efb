"""The blank virtual token over the isolated pcscd, driven by tools written for YubiKeys:
yubico-piv-tool (Debian's, apt) and yubikey-manager (its own venv, never the station's).
What they print and what ``cryptography`` checks of their output are the assertions."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from station.devices import pcsc
from station.devices.virtual import VirtualPivCard, blank_token
from tests.conftest import GOLDEN, TEST_PIN

DEFAULT_KEY = "010203040506070801020304050607080102030405060708"
NEW_KEY = "1122334455667788a1b2c3d4e5f60718293a4b5c6d7e8f90"
YKMAN_CANDIDATES = [os.environ.get("YKMAN", ""), "/opt/ykman-venv/bin/ykman"]


def _tool(name: str, candidates: list[str]) -> str:
    for path in [*candidates, shutil.which(name) or ""]:
        if path and os.access(path, os.X_OK):
            return path
    pytest.fail(f"{name} is not installed: `make setup` installs it (yubico-piv-tool from apt, ykman in /opt/ykman-venv)")


@pytest.fixture(scope="module")
def piv_tool():
    return _tool("yubico-piv-tool", [])


@pytest.fixture(scope="module")
def ykman():
    return _tool("ykman", YKMAN_CANDIDATES)


@pytest.fixture
def run(pcscd):
    """Run a witness against the isolated pcscd (PCSCLITE_CSOCK_NAME in pcscd.env)."""

    def call(*cmd, ok=True):
        result = subprocess.run([str(c) for c in cmd], env=pcscd.env, capture_output=True, text=True, timeout=120)
        if ok:
            assert result.returncode == 0, f"{cmd}: {result.stdout}{result.stderr}"
        return result

    return call


@pytest.fixture
def yk(run, piv_tool, pcscd):
    """yubico-piv-tool on the test reader."""
    return lambda *args, ok=True: run(piv_tool, "-r", pcscd.reader(), *args, ok=ok)


@pytest.fixture
def ym(run, ykman, pcscd):
    """ykman on the test reader (it needs a card that answers GET VERSION)."""
    return lambda *args, ok=True: run(ykman, "--reader", pcscd.reader(), *args, ok=ok)


def test_version_serial_and_status(insert_card, yk):
    insert_card(blank_token(serial=12345678))
    assert "Application version 5.4.3 found." in yk("-a", "version").stdout
    status = yk("-a", "status").stdout
    assert "Version:\t5.4.3" in status and "Serial Number:\t12345678" in status
    assert "PIN tries left:\t3" in status and "CHUID:\tNo data available" in status


def test_set_mgm_key_then_only_the_new_key_authenticates(insert_card, yk, ym):
    insert_card(blank_token())
    assert "Successfully set new management key." in yk("-a", "set-mgm-key", "-n", NEW_KEY).stderr
    old = yk(f"--key={DEFAULT_KEY}", "-a", "generate", "-s", "9e", "-A", "ECCP256", ok=False)
    assert old.returncode != 0 and "Failed authentication" in old.stderr
    new = yk(f"--key={NEW_KEY}", "-a", "generate", "-s", "9e", "-A", "ECCP256")
    assert "BEGIN PUBLIC KEY" in new.stdout
    info = ym("piv", "info").stdout
    assert "Management key algorithm: TDES" in info and "default Management key" not in info
    assert "Slot 9E (CARD_AUTH)" in info


def test_verify_pin_counts_down_and_a_right_pin_restores(insert_card, yk):
    insert_card(blank_token())
    wrong = yk("-a", "verify-pin", "-P", "654321", ok=False)
    assert wrong.returncode != 0 and "2 tries left" in wrong.stderr
    assert "PIN tries left:\t2" in yk("-a", "status").stdout
    assert "Successfully verified PIN." in yk("-a", "verify-pin", "-P", "123456").stderr
    assert "PIN tries left:\t3" in yk("-a", "status").stdout


def test_reset_only_when_pin_and_puk_are_blocked_and_it_restores_defaults(insert_card, yk, ym):
    insert_card(blank_token())
    yk("-a", "set-mgm-key", "-n", NEW_KEY)
    yk(f"--key={NEW_KEY}", "-a", "change-pin", "-P", "123456", "-N", "24682468")
    yk(f"--key={NEW_KEY}", "-a", "generate", "-s", "9a", "-A", "ECCP256")
    refused = yk("-a", "reset", ok=False)
    assert refused.returncode != 0 and "Reset failed, are pincodes blocked?" in refused.stderr
    for _ in range(3):
        yk("-a", "verify-pin", "-P", "000000", ok=False)
    assert "Pin code blocked" in yk("-a", "verify-pin", "-P", "24682468", ok=False).stderr
    assert yk("-a", "reset", ok=False).returncode != 0  # the PUK still has tries
    for _ in range(3):
        yk("-a", "unblock-pin", "-P", "00000000", "-N", "999999", ok=False)
    assert "Successfully reset the application." in yk("-a", "reset").stderr
    assert "Successfully verified PIN." in yk("-a", "verify-pin", "-P", "123456").stderr
    assert "BEGIN PUBLIC KEY" in yk(f"--key={DEFAULT_KEY}", "-a", "generate", "-s", "9c", "-A", "ECCP256").stdout
    info = ym("piv", "info").stdout
    assert "PIN tries remaining:      3/3" in info and "PUK tries remaining:      3/3" in info
    assert "Slot 9A" not in info and "Slot 9C (SIGNATURE)" in info  # the old key went with the reset


def test_generated_pin_policy_shows_in_metadata(insert_card, yk, ym):
    insert_card(blank_token())
    yk("-a", "generate", "-s", "9a", "-A", "ECCP256", "--pin-policy=once")
    yk("-a", "generate", "-s", "9d", "-A", "ECCP256", "--pin-policy=never", "--touch-policy=always")
    info_9a = ym("piv", "keys", "info", "9a").stdout
    assert "Origin:                 GENERATED" in info_9a and "PIN required for use:   ONCE" in info_9a
    info_9d = ym("piv", "keys", "info", "9d").stdout
    assert "PIN required for use:   NEVER" in info_9d and "Touch required for use: ALWAYS" in info_9d
    assert ym("piv", "keys", "info", "9c", ok=False).returncode != 0  # no key there


@pytest.fixture
def sim_token(pcscd):
    """``station sim card --blank-token ...`` as its own process in pcscd's network namespace."""
    procs = []

    def start(*args):
        cmd = [*pcscd.nsenter_prefix(), sys.executable, "-m", "station", "sim", "card", "--blank-token", *args,
               "--vpcd", f"127.0.0.1:{pcscd.port}"]
        procs.append(subprocess.Popen(cmd, env=pcscd.env, stderr=subprocess.PIPE, text=True))
        pcsc.wait_for_card(pcscd.reader(), present=True, timeout=20)

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)
    pcsc.wait_for_card(pcscd.reader(), present=False, timeout=10)


def _extension(cert: x509.Certificate, dotted: str) -> bytes:
    return cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(dotted)).value.value


def test_ykman_on_firmware_5_7_attests_a_generated_key_up_to_the_exported_root(sim_token, ym, yk, tmp_path):
    root_path = tmp_path / "root.pem"
    sim_token("--firmware", "5.7.1", "--attestation-root-out", str(root_path))
    info = ym("piv", "info").stdout
    assert "PIV version:              5.7.1" in info and "Management key algorithm: AES192" in info
    # ykman authenticates with the default key as AES-192 (16-byte challenges) to generate
    ym("piv", "keys", "generate", "-m", DEFAULT_KEY, "-a", "ECCP256", "9a", tmp_path / "pub.pem")
    ym("piv", "keys", "attest", "9a", tmp_path / "att.pem")
    ym("piv", "certificates", "export", "f9", tmp_path / "f9.pem")

    root = x509.load_pem_x509_certificate(root_path.read_bytes())
    f9 = x509.load_pem_x509_certificate((tmp_path / "f9.pem").read_bytes())
    attestation = x509.load_pem_x509_certificate((tmp_path / "att.pem").read_bytes())
    root.verify_directly_issued_by(root)
    f9.verify_directly_issued_by(root)
    attestation.verify_directly_issued_by(f9)
    generated = serialization.load_pem_public_key((tmp_path / "pub.pem").read_bytes())
    assert attestation.public_key() == generated
    assert attestation.subject.rfc4514_string() == "CN=YubiKey PIV Attestation 9a"
    assert _extension(attestation, "1.3.6.1.4.1.41482.3.3") == bytes([5, 7, 1])
    serial = int(yk("-a", "status").stdout.split("Serial Number:\t")[1].split()[0])
    assert _extension(attestation, "1.3.6.1.4.1.41482.3.7") == b"\x02\x04" + serial.to_bytes(4, "big")
    assert _extension(attestation, "1.3.6.1.4.1.41482.3.8") == bytes([2, 1])  # 9A's default: PIN once, no touch
    assert _extension(attestation, "1.3.6.1.4.1.41482.3.9") == b"\x01"
    # yubico-piv-tool 2.2.0 knows only 3DES management keys: on 5.7 it cannot authenticate
    assert yk(f"--key={DEFAULT_KEY}", "-a", "generate", "-s", "9c", ok=False).returncode != 0


def test_the_plain_card_answers_no_vendor_command(insert_card, yk, ym):
    from station.devices.virtual import load_card_image

    card = load_card_image(GOLDEN, pin=TEST_PIN)
    assert type(card) is VirtualPivCard
    insert_card(card)
    assert "Failed to retrieve application version." in yk("-a", "version").stderr
    assert ym("piv", "info", ok=False).returncode != 0
