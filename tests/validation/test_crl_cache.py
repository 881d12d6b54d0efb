"""The fetch cache: CRLs reused until nextUpdate (or max age), refreshed after, kept when
the distribution point cannot be reached; AIA bundles kept for a day."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from asn1crypto import crl as asn1_crl

from station.validation.card_contents import CardContents
from station.validation.fetch import CachedCRLFetcher
from station.validation.trust import TrustProfile
from station.validation.verdict import evaluate_card

from .icam import ICAM

URL = "http://http.apl-test.cite.fpki-lab.gov/crls/ICAMTestCardRootCA.crl"
CURRENT = (ICAM / "pki" / "crls" / "ICAMTestCardRootCA.crl").read_bytes()  # nextUpdate 2032
EXPIRED = (ICAM / "pki" / "crls" / "ICAMExpiredCRL.crl").read_bytes()  # nextUpdate passed


class FakeHttp:
    def __init__(self, body: bytes | None, max_age_hours: float = 0):
        self.body = body
        self.calls = 0
        self.profile = TrustProfile(name="t", anchors=(b"",), piv_auth_policies=frozenset({"1"}),
                                    crl_max_age_hours=max_age_hours)

    async def get(self, url):
        self.calls += 1
        if self.body is None:
            raise OSError("unreachable")
        return self.body, "application/pkix-crl"


def fetch(fetcher, url=URL):
    return asyncio.run(fetcher._get(url))


def test_fresh_crl_is_fetched_once_then_served_from_disk(tmp_path: Path):
    http = FakeHttp(CURRENT)
    fetch(CachedCRLFetcher(http, tmp_path))
    assert http.calls == 1 and len(list(tmp_path.glob("*.crl"))) == 1
    again = FakeHttp(None)  # the mirror is gone: the cached copy is still good
    result = fetch(CachedCRLFetcher(again, tmp_path))
    assert again.calls == 0
    assert result.dump() == asn1_crl.CertificateList.load(CURRENT).dump()


def test_crl_past_next_update_is_refetched(tmp_path: Path):
    fetch(CachedCRLFetcher(FakeHttp(EXPIRED), tmp_path))
    http = FakeHttp(CURRENT)
    result = fetch(CachedCRLFetcher(http, tmp_path))
    assert http.calls == 1
    assert result["tbs_cert_list"]["next_update"].native > datetime.now(timezone.utc)


def test_stale_copy_is_kept_when_refresh_fails(tmp_path: Path):
    fetch(CachedCRLFetcher(FakeHttp(EXPIRED), tmp_path))
    http = FakeHttp(None)
    result = fetch(CachedCRLFetcher(http, tmp_path))  # validation then judges it stale
    assert http.calls == 1
    assert result["tbs_cert_list"]["next_update"].native < datetime.now(timezone.utc)


def test_max_age_forces_refresh(tmp_path: Path):
    fetch(CachedCRLFetcher(FakeHttp(CURRENT), tmp_path))
    within = FakeHttp(CURRENT, max_age_hours=24)
    fetch(CachedCRLFetcher(within, tmp_path))
    assert within.calls == 0
    two_days_ago = (datetime.now(timezone.utc) - timedelta(hours=48)).timestamp()
    for f in tmp_path.glob("*.crl"):
        os.utime(f, (two_days_ago, two_days_ago))
    http = FakeHttp(CURRENT, max_age_hours=24)
    fetch(CachedCRLFetcher(http, tmp_path))
    assert http.calls == 1


def test_corrupt_cache_file_is_ignored(tmp_path: Path):
    fetch(CachedCRLFetcher(FakeHttp(CURRENT), tmp_path))
    for f in tmp_path.glob("*.crl"):
        f.write_bytes(b"garbage")
    http = FakeHttp(CURRENT)
    fetch(CachedCRLFetcher(http, tmp_path))
    assert http.calls == 1


def test_warm_cache_validates_without_the_mirror(icam_profile, tmp_path: Path):
    """AIA bundles and CRLs fetched once are enough for the next verification in CRL mode,
    with every PKI host unreachable."""
    golden = CardContents.from_image_dir(ICAM / "cards" / "46_Golden_FIPS_201-2_PIV")
    assert evaluate_card(golden, icam_profile, mode="crl", cache_dir=tmp_path).accepted
    assert list((tmp_path / "aia").glob("*.der")) and list(tmp_path.glob("*.crl"))
    dead = replace(icam_profile, url_map={host: "http://127.0.0.1:9" for host in icam_profile.url_map})
    assert evaluate_card(golden, dead, mode="crl", cache_dir=tmp_path).accepted
    cold = evaluate_card(golden, dead, mode="crl", cache_dir=tmp_path / "empty")
    assert cold.verdict == "reject" and cold.reasons[0] in {"cert-invalid", "revocation-unknown"}
