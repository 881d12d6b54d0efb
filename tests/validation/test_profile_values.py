"""A trust profile with a value the station cannot use is refused when it is loaded, with one
line naming the setting, not accepted silently (a policy that is no OID matches nothing; a
negative timeout fails every fetch) nor left to a traceback at the first card."""

from __future__ import annotations

import subprocess
import sys

import pytest

from station.validation.trust import TrustProfile, TrustProfileError
from .icam import ICAM

ANCHOR = ICAM / "pki" / "roots" / "00_ICAM_Test_Card_Root_CA.crt"
GOOD = f'anchors = ["{ANCHOR}"]\npiv_auth_policies = ["2.16.840.1.101.3.2.1.48.11"]\n'


@pytest.mark.parametrize("extra,named", [
    ('card_auth_policies = ["not-an-oid"]\n', "not-an-oid"),
    ("fetch_timeout = -1\n", "fetch_timeout"),
    ("fetch_timeout = 0\n", "fetch_timeout"),
    ('fetch_timeout = "5"\n', "fetch_timeout"),
    ('crl_cache = "x"\n', "crl_cache"),
    ("[crl_cache]\nmax_age_hours = -1\n", "max_age_hours"),
])
def test_bad_values_are_refused_at_load(tmp_path, extra, named):
    path = tmp_path / "p.toml"
    path.write_text(GOOD + extra)
    with pytest.raises(TrustProfileError) as info:
        TrustProfile.load(path)
    assert named in str(info.value)


def test_policy_that_is_not_an_oid(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(GOOD.replace("2.16.840.1.101.3.2.1.48.11", "not-an-oid"))
    with pytest.raises(TrustProfileError, match="not-an-oid"):
        TrustProfile.load(path)


def test_good_values_still_load(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(GOOD + "fetch_timeout = 0.5\n[crl_cache]\nmax_age_hours = 0\n")
    profile = TrustProfile.load(path)
    assert profile.fetch_timeout == 0.5 and profile.crl_max_age_hours == 0


def test_card_verify_says_it_in_one_line(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(GOOD + 'crl_cache = "x"\n')
    done = subprocess.run([sys.executable, "-m", "station", "card", "verify", "--profile", str(path), "--pin-stdin"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and "crl_cache must be a table" in done.stderr
