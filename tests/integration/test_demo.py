"""`make demo` runs `station demo`: read a demo card, then PKI-AUTH a golden and a revoked card."""

import subprocess
import sys


def test_demo_reads_and_authenticates(tmp_path):
    result = subprocess.run([sys.executable, "-m", "station", "demo"], capture_output=True, text=True, timeout=180,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Slot 9A:         CN=Demo Cardholder" in out and "tries left: 5" in out
    golden, revoked = out.split("46_Golden_FIPS_201-2_PIV:")[1].split("24_Revoked_Certificates:")
    assert "ACCEPT" in golden and "REJECT (cert-revoked" in revoked
    assert "246810" not in out + result.stderr
