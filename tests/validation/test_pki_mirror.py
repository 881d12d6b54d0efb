"""The PKI mirror: loopback only, files by name, real OCSP answers, profile, CLI."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from asn1crypto import ocsp

from station.validation.trust import TrustProfile

from .icam import ICAM, REPO


def test_every_url_is_loopback(mirror):
    assert mirror.url_map
    for url in mirror.url_map.values():
        assert urlsplit(url).hostname == "127.0.0.1"


def test_serves_files_by_name(mirror):
    base = mirror.url_map["http.apl-test.cite.fpki-lab.gov"]
    for sub, name in (("crls", "ICAMTestCardRootCA.crl"), ("aia", "certsIssuedToICAMTestCardSigningCA.p7c")):
        with urllib.request.urlopen(f"{base}/{sub}/{name}", timeout=5) as response:
            assert response.read() == (ICAM / "pki" / sub / name).read_bytes()
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"{base}/crls/..%2FEXPECTED.md", timeout=5)


def test_ocsp_host_answers_garbage_with_error(mirror):
    url = mirror.url_map["ocspgen3.apl-test.cite.fpki-lab.gov"]
    request = urllib.request.Request(url, data=b"junk", headers={"Content-Type": "application/ocsp-request"})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            status = ocsp.OCSPResponse.load(response.read())["response_status"].native
            assert status != "successful"
    except urllib.error.HTTPError as exc:
        assert exc.code >= 400


def test_profile_written_by_the_mirror_loads(mirror, tmp_path):
    profile = TrustProfile.load(mirror.write_profile(tmp_path / "p.toml"))
    assert profile.offline and profile.piv_auth_policies == {"2.16.840.1.101.3.2.1.48.11"}
    assert profile.map_url("http://ocspGen3.apl-test.cite.fpki-lab.gov").startswith("http://127.0.0.1:")
    assert profile.map_url("http://elsewhere.example/x") is None


def test_cli_runs_until_sigterm(tmp_path):
    out = tmp_path / "icam-test.toml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "station", "sim", "pki-mirror", "--from", str(ICAM), "--profile-out", str(out)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert out.exists(), proc.stderr.read() if proc.poll() is not None else "no profile written"
        profile = TrustProfile.load(out)
        base = profile.url_map["http.apl-test.cite.fpki-lab.gov"]
        with urllib.request.urlopen(f"{base}/crls/ICAMTestCardRootCA.crl", timeout=5) as response:
            assert response.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def test_killed_mirror_leaves_no_responder_keys_behind(mirror, tmp_path):
    """Issue 9: SIGKILL leaves the working folder with the responder keys; the next start removes it."""
    from station.sim.pki_mirror import WORKDIR_PREFIX, PkiMirror

    out = tmp_path / "icam-test.toml"
    proc = subprocess.Popen([sys.executable, "-m", "station", "sim", "pki-mirror", "--from", str(ICAM), "--profile-out", str(out)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert out.exists()
    finally:
        proc.kill()
        proc.wait(timeout=5)
    left = list(Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}{proc.pid}-*"))  # named after its process
    assert len(left) == 1
    killed = left[0]
    assert list(killed.glob("*.key.pem"))  # what SIGKILL leaves: the responders' private keys
    assert killed.stat().st_mode & 0o777 == 0o700
    with PkiMirror(ICAM) as second:
        assert second.url_map
        assert not killed.exists()
        assert mirror._workdir.is_dir()  # a running mirror's folder stays
