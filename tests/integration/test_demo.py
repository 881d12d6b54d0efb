"""`make demo` runs `station demo`: read a demo card, PKI-AUTH a golden and a revoked card, then
issue a derived credential to the golden card's holder on a fresh SoftHSM token."""

import subprocess
import sys


def test_demo_reads_and_authenticates(tmp_path):
    result = subprocess.run([sys.executable, "-m", "station", "demo"], capture_output=True, text=True, timeout=180,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Slot 9A:         CN=Demo Cardholder" in out and "tries left: 5" in out
    golden, rest = out.split("46_Golden_FIPS_201-2_PIV:")[1].split("24_Revoked_Certificates:")
    revoked, issuance = rest.split("Demo: issuing a derived PIV credential")
    assert "ACCEPT" in golden and "REJECT (cert-revoked" in revoked
    steps = [line.split("]")[0].strip(" [") for line in issuance.splitlines() if line.startswith("  [")]
    assert steps == ["requested", "approved", "authenticated", "key_generated", "delivered", "activated", "issued"]
    assert "    ... generating the key on the token" in issuance.split("[authenticated]")[1].split("[key_generated]")[0]  # during the step
    assert "ISSUED certificate" in issuance and "2.16.840.1.101.3.2.1.3.40" in issuance and "self-test pass" in issuance
    assert "label:      Derived PIV Authentication" in issuance  # OpenSC reads it off the token
    assert "audit trail intact" in issuance
    for secret in ("246810", "k9Pz4mQ1", "55667788", "registrar passphrase", "supervisor passphrase"):
        assert secret not in out + result.stderr


def test_demo_without_the_test_data_says_what_it_skipped(tmp_path):
    missing = tmp_path / "no-icam"
    result = subprocess.run([sys.executable, "-m", "station", "demo", "--icam", str(missing)], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Slot 9A:         CN=Demo Cardholder" in result.stdout  # what it could do, it did
    assert result.stderr == (f"station: PKI-AUTH and issuance were skipped: no GSA ICAM test cards in {missing}/cards. "
                             "Pass --icam DIR naming the GSA ICAM test PKI folder (the one holding cards/ and pki/).\n")
