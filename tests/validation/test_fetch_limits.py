"""Fetching for one verification is bounded (issue 9 §4, §5): one deadline for all of it, a
failing URL asked once, and no loopback or link-local address unless the url_map names it.

A real HTTP server on loopback plays the test PKI's file host with bad CRLs: it serves the
AIA files, and trickles or fails every CRL; every CRL request is counted, and every answer ends
by itself within ``SLOW_FOR`` seconds."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections import Counter
from dataclasses import replace

import pytest

from station.validation.card_contents import CardContents
from station.validation.fetch import HttpClient
from station.validation.trust import TrustProfile, TrustProfileError
from station.validation.verdict import evaluate_card

from .icam import CARDS, ICAM

GOLDEN = CARDS / "46_Golden_FIPS_201-2_PIV"
FILE_HOST = "http.apl-test.cite.fpki-lab.gov"
SLOW_FOR = 20.0  # seconds a trickling answer lasts at most


class BadHost(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, mode: str):
        self.mode = mode  # "trickle": one byte every 0.5 s; "fail": 503 at once
        self.requests: Counter[str] = Counter()
        super().__init__(("127.0.0.1", 0), _Handler)
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server API)
        if self.path.startswith("/aia/"):  # issuer certificates: as the real host serves them
            body = (ICAM / "pki" / "aia" / self.path.rsplit("/", 1)[-1]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/pkcs7-mime")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.server.requests[self.path] += 1
        if self.server.mode == "fail":
            self.send_error(503)
            return
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        end = time.monotonic() + SLOW_FOR
        try:
            while time.monotonic() < end:
                self.wfile.write(b"0")
                self.wfile.flush()
                time.sleep(0.5)
        except OSError:
            pass  # the station hung up

    do_POST = do_GET  # noqa: N815

    def log_message(self, fmt, *args):
        pass


@pytest.fixture
def bad_host(request):
    server = BadHost(request.param)
    yield server
    server.stop()


def _profile(icam_profile, server, **changes) -> TrustProfile:
    return replace(icam_profile, url_map={**icam_profile.url_map, FILE_HOST: server.base}, revocation="crl", **changes)


@pytest.mark.parametrize("bad_host", ["trickle"], indirect=True)
def test_trickling_crl_host_is_cut_by_one_deadline(bad_host, icam_profile, tmp_path):
    """A CRL server sending one byte every 2 s kept `card verify` busy past 90 s."""
    profile = _profile(icam_profile, bad_host, verification_deadline=3, fetch_timeout=2)
    started = time.monotonic()
    verdict = evaluate_card(CardContents.from_image_dir(GOLDEN), profile, cache_dir=tmp_path)
    elapsed = time.monotonic() - started
    assert not verdict.accepted and "revocation-unknown" in verdict.reasons, verdict.details
    assert elapsed < 3 + 2 + 2, f"the verification took {elapsed:.1f} s"
    assert bad_host.requests and max(bad_host.requests.values()) == 1


@pytest.mark.parametrize("bad_host", ["fail"], indirect=True)
def test_failing_url_is_asked_once(bad_host, icam_profile, tmp_path):
    """A failing URL was fetched 18 times per verification; now once, and not again by the
    next verification within ``failed_url_retry``."""
    profile = _profile(icam_profile, bad_host)
    for _ in range(2):
        verdict = evaluate_card(CardContents.from_image_dir(GOLDEN), profile, cache_dir=tmp_path)
        assert not verdict.accepted and "revocation-unknown" in verdict.reasons, verdict.details
    assert bad_host.requests and set(bad_host.requests.values()) == {1}, bad_host.requests


@pytest.mark.parametrize("bad_host", ["fail"], indirect=True)
def test_loopback_and_link_local_refused_unless_mapped(bad_host, icam_profile):
    port = bad_host.server_address[1]
    online = replace(icam_profile, offline=False, url_map={})
    for url in (f"http://127.0.0.1:{port}/crl", f"http://localhost:{port}/crl", f"http://[::1]:{port}/crl",
                "http://169.254.169.254/latest/meta-data/", "http://0.0.0.0:{port}/crl".format(port=port)):
        with pytest.raises(OSError, match="loopback or link-local"):
            asyncio.run(HttpClient(online).get(url))
    assert not bad_host.requests
    mapped = replace(online, url_map={"127.0.0.1": bad_host.base})
    with pytest.raises(OSError, match="503"):  # named in the url_map: asked
        asyncio.run(HttpClient(mapped).get(f"http://127.0.0.1:{port}/crl"))
    assert bad_host.requests == {"/crl": 1}


@pytest.mark.parametrize("key, value", [("fetch_timeout", -1), ("verification_deadline", 0), ("failed_url_retry", "60"),
                                        ("verification_deadline", True)])
def test_profile_time_limits_are_checked(icam_profile_path, key, value):
    import tomllib

    data = tomllib.loads(icam_profile_path.read_text())
    data[key] = value
    with pytest.raises(TrustProfileError, match=key):
        TrustProfile.from_dict(data, base=icam_profile_path.parent)
