"""Trust profiles: loading, validation of the file, the URL map."""

from __future__ import annotations

from pathlib import Path

import pytest

from station.validation.trust import TrustProfile, TrustProfileError

from .icam import ICAM, REPO

ROOT = ICAM / "pki" / "roots" / "00_ICAM_Test_Card_Root_CA.crt"


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "profile.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_relative_anchor_and_url_map(tmp_path):
    (tmp_path / "root.crt").write_bytes(ROOT.read_bytes())
    profile = TrustProfile.load(write(tmp_path, """
anchors = ["root.crt"]
piv_auth_policies = ["2.16.840.1.101.3.2.1.48.11"]
revocation = "crl"
[url_map]
"HTTP.example.gov" = "http://127.0.0.1:9000/"
"""))
    assert len(profile.anchors) == 1 and profile.revocation == "crl"
    assert profile.map_url("http://http.example.gov/crls/a.crl") == "http://127.0.0.1:9000/crls/a.crl"
    assert profile.map_url("http://other.example.gov/x") == "http://other.example.gov/x"
    assert profile.with_revocation("ocsp").revocation == "ocsp"


@pytest.mark.parametrize("body,fragment", [
    ('piv_auth_policies = ["1.2.3"]', "anchor"),
    ('anchors = ["missing.crt"]\npiv_auth_policies = ["1.2.3"]', "cannot read"),
    (f'anchors = ["{ROOT}"]', "piv_auth_policies"),
    (f'anchors = ["{ROOT}"]\npiv_auth_policies = ["1.2.3"]\nrevocation = "maybe"', "revocation"),
    ("anchors = [", "cannot read trust profile"),
])
def test_bad_profiles(tmp_path, body, fragment):
    with pytest.raises(TrustProfileError) as err:
        TrustProfile.load(write(tmp_path, body))
    assert fragment in str(err.value)
    assert err.value.code == "bad-profile"


def test_shipped_federal_common_profile_shape(tmp_path):
    shipped = REPO / "station" / "resources" / "trust-profiles" / "federal-common.toml"
    text = shipped.read_text(encoding="utf-8")
    (tmp_path / "federal-common-policy-ca-g2.crt").write_bytes(ROOT.read_bytes())  # stand-in anchor
    (tmp_path / "federal-common.toml").write_text(text, encoding="utf-8")
    profile = TrustProfile.load(tmp_path / "federal-common.toml")
    assert profile.piv_auth_policies == {"2.16.840.1.101.3.2.1.3.13"}
    assert profile.revocation == "ocsp-then-crl" and not profile.offline
