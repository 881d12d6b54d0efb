"""Fetching certificates (AIA ``caIssuers``), CRLs and OCSP responses for path validation.

These are pyhanko-certvalidator fetchers that send every URL named in a certificate through
the trust profile's URL map (an air-gapped badging office points the PKI's hosts at local
mirrors) and keep CRLs in an on-disk cache that is reused until the CRL's ``nextUpdate``
(or until it is older than the profile's ``crl_cache.max_age_hours``).

Every request has a timeout, and all requests of one verification share one deadline (the
profile's ``verification_deadline``, counted from the fetchers' creation): a server that sends
one byte every few seconds never trips a socket timeout, so the body is read in pieces
against the deadline. A URL that failed is not asked again for ``failed_url_retry`` seconds
(pyhanko asks for the same CRL or OCSP answer once per path it tries: a dead server was asked
18 times per verification). Nothing here retries. Unless the url_map names its host, a URL
that leads to a loopback or link-local address is refused: it comes from a certificate that
is not validated yet, and must not make the station probe its own machine or the cloud
metadata address (169.254.169.254).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import ipaddress
import logging
import os
import socket
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

from asn1crypto import crl, ocsp, pem, x509
from pyhanko_certvalidator import errors
from pyhanko_certvalidator.fetchers.api import CertificateFetcher, CRLFetcher, Fetchers, OCSPFetcher
from pyhanko_certvalidator.fetchers.common_utils import (
    enumerate_delivery_point_urls,
    format_ocsp_request,
    gather_aia_issuer_urls,
    process_ocsp_response_data,
    unpack_cert_content,
)
from pyhanko_certvalidator.util import get_ocsp_urls, get_relevant_crl_dps, issuer_serial

from station.validation.trust import TrustProfile

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 8 * 1024 * 1024


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: they could lead past the URL map."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class DeadlinePassed(OSError):
    """The verification's time for fetching is used up (not the URL's fault)."""


class FailedUrls:
    """URLs whose fetch failed, and until when they are not asked again (shared by every
    verification of the process)."""

    def __init__(self):
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def check(self, key: str, url: str) -> None:
        with self._lock:
            until = self._until.get(key, 0.0)
        if until > time.monotonic():
            raise OSError(f"{url}: failed moments ago; not asked again for {until - time.monotonic():.0f} s")

    def record(self, key: str, seconds: float) -> None:
        with self._lock:
            self._until[key] = time.monotonic() + seconds
            if len(self._until) > 1024:  # bounded: drop the entries that have run out
                now = time.monotonic()
                self._until = {k: v for k, v in self._until.items() if v > now}

    def clear(self) -> None:
        with self._lock:
            self._until.clear()


FAILED_URLS = FailedUrls()


def _refuse_local(url: str) -> None:
    """Refuse a URL whose host is (or resolves to) a loopback, link-local or unspecified address."""
    host = urlsplit(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except (socket.gaierror, UnicodeError):
        return  # the request itself fails and says so
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        address = getattr(address, "ipv4_mapped", None) or address
        if address.is_loopback or address.is_link_local or address.is_unspecified:
            raise OSError(f"{url}: refused: the host is a loopback or link-local address "
                          f"(name it in the trust profile's url_map to allow it)")


#: the cancel token of the verification under way in this context (PKI-AUTH sets it): checked
#: before each fetch, so a cancel stops between fetches; a fetch already in flight finishes
CANCEL: contextvars.ContextVar = contextvars.ContextVar("station_fetch_cancel", default=None)


@contextlib.contextmanager
def cancelled_by(cancel) -> object:
    """Fetches in this block (and the threads asyncio runs them on) stop once ``cancel`` is set."""
    token = CANCEL.set(cancel)
    try:
        yield
    finally:
        CANCEL.reset(token)


class HttpClient:
    """Blocking HTTP with the profile's URL map, timeout and verification deadline, run off
    the event loop."""

    def __init__(self, profile: TrustProfile, failed: FailedUrls = FAILED_URLS):
        self.profile = profile
        self.deadline = time.monotonic() + profile.verification_deadline
        self.failed = failed
        self._opener: urllib.request.OpenerDirector | None = None  # built at the first fetch: most validations fetch nothing

    @property
    def opener(self) -> urllib.request.OpenerDirector:
        if self._opener is None:
            self._opener = urllib.request.build_opener(_NoRedirect)
        return self._opener

    async def get(self, url: str) -> tuple[bytes, str | None]:
        return await asyncio.to_thread(self._request, url, None, None)

    async def post(self, url: str, body: bytes, content_type: str) -> tuple[bytes, str | None]:
        return await asyncio.to_thread(self._request, url, body, content_type)

    def _request(self, url: str, body: bytes | None, content_type: str | None):
        from station.cancel import check

        check(CANCEL.get(), "between network fetches")
        target = self.profile.map_url(url)
        if target is None:
            raise OSError(f"{url}: host not in the trust profile's url_map (offline profile)")
        if not target.startswith(("http://", "https://")):
            raise OSError(f"{url}: only http(s) URLs are fetched")
        if not self.profile.maps(url):
            _refuse_local(target)
        key = f"{'POST' if body else 'GET'} {target}"
        self.failed.check(key, url)
        try:
            return self._fetch(target, body, content_type, url)
        except DeadlinePassed:
            raise
        except OSError:
            self.failed.record(key, self.profile.failed_url_retry)
            raise

    def _remaining(self, url: str) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlinePassed(f"{url}: not fetched: the verification's {self.profile.verification_deadline:g} s "
                                 "for fetching are used up")
        return left

    def _fetch(self, target: str, body: bytes | None, content_type: str | None, url: str):
        request = urllib.request.Request(target, data=body, method="POST" if body else "GET")
        if content_type:
            request.add_header("Content-Type", content_type)
        timeout = min(self.profile.fetch_timeout, self._remaining(url))
        with self.opener.open(request, timeout=timeout) as response:
            chunks, size = [], 0
            while chunk := response.read1(64 * 1024):  # whatever has arrived: a trickle cannot outlast the deadline
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise OSError(f"{url}: response larger than {MAX_RESPONSE_BYTES} bytes")
                chunks.append(chunk)
                if time.monotonic() > self.deadline:
                    raise OSError(f"{url}: too slow: still sending when the verification's "
                                  f"{self.profile.verification_deadline:g} s for fetching ran out")
            return b"".join(chunks), response.headers.get_content_type()


class DiskCache:
    """Files fetched from URLs, one per URL, written atomically; the file's mtime is when
    it was fetched. ``None`` directory: nothing is kept."""

    NEVER = datetime.min.replace(tzinfo=timezone.utc)

    def __init__(self, directory: Path | None, suffix: str):
        self.directory = directory
        self.suffix = suffix

    def _path(self, url: str) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / (hashlib.sha256(url.encode()).hexdigest()[:32] + self.suffix)

    def read(self, url: str) -> tuple[bytes | None, datetime]:
        path = self._path(url)
        try:
            if path is not None and path.is_file():
                return path.read_bytes(), datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
        except OSError:
            pass
        return None, self.NEVER

    def write(self, url: str, data: bytes) -> None:
        path = self._path(url)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)


class MappedCertificateFetcher(CertificateFetcher):
    """Issuer certificates from AIA caIssuers (single certificates or .p7c bundles),
    kept on disk for ``AIA_MAX_AGE`` so a warm station does not ask again."""

    AIA_MAX_AGE = timedelta(hours=24)

    def __init__(self, http: HttpClient, cache_dir: Path | None = None):
        self.http = http
        self.cache = DiskCache(cache_dir / "aia" if cache_dir else None, ".der")
        self._by_url: dict[str, list[x509.Certificate]] = {}

    async def _fetch_url(self, url: str) -> list[x509.Certificate]:
        if url not in self._by_url:
            self._by_url[url] = await self._load(url)
        return self._by_url[url]

    async def _load(self, url: str) -> list[x509.Certificate]:
        cached, fetched_at = self.cache.read(url)
        if cached is not None and fetched_at + self.AIA_MAX_AGE > datetime.now(timezone.utc):
            certs = _certificates(cached, _cached_content_type(url), url)
            if certs:
                return certs
        try:
            data, ctype = await self.http.get(url)
            certs = _certificates(data, ctype, url)
        except OSError as exc:
            log.info("certificate fetch from %s failed: %s", url, exc)
            certs = []
        if certs:
            self.cache.write(url, data)
            return certs
        return _certificates(cached, _cached_content_type(url), url) if cached is not None else []

    async def fetch_cert_issuers(self, cert):
        for url in list(gather_aia_issuer_urls(cert))[:10]:
            for issuer in await self._fetch_url(url):
                yield issuer

    async def fetch_crl_issuers(self, certificate_list):
        for url in list(certificate_list.issuer_cert_urls)[:10]:
            for issuer in await self._fetch_url(url):
                yield issuer

    def fetched_certs(self):
        return [c for certs in self._by_url.values() for c in certs]


def _cached_content_type(url: str) -> str | None:
    """The type a cached AIA file was served with, from its name (RFC 5280 §4.2.2.1)."""
    name = url.lower().rsplit("?", 1)[0]
    if name.endswith(".p7c"):
        return "application/pkcs7-mime"
    if name.endswith((".crt", ".cer")):
        return "application/pkix-cert"
    return None


def _certificates(data: bytes, content_type: str | None, url: str) -> list[x509.Certificate]:
    try:
        return list(unpack_cert_content(data, content_type, url, permit_pem=True))
    except (ValueError, TypeError) as exc:
        log.info("no certificates in %s: %s", url, exc)
        return []


class CachedCRLFetcher(CRLFetcher):
    """CRLs from the distribution points, through an on-disk cache."""

    def __init__(self, http: HttpClient, cache_dir: Path | None):
        self.http = http
        self.cache = DiskCache(cache_dir, ".crl")
        self._by_cert: dict[bytes, list[crl.CertificateList]] = {}
        self._by_url: dict[str, crl.CertificateList] = {}

    async def fetch(self, cert, *, use_deltas=None):
        key = issuer_serial(cert)
        if key in self._by_cert:
            return self._by_cert[key]
        results = []
        failures = []
        for dp in get_relevant_crl_dps(cert, use_deltas=bool(use_deltas)):
            for url in enumerate_delivery_point_urls(dp):
                try:
                    results.append(await self._get(url))
                except (OSError, ValueError) as exc:
                    failures.append(f"{url}: {exc}")
        if failures and not results:
            raise errors.CRLFetchError("; ".join(failures))
        self._by_cert[key] = results
        return results

    async def _get(self, url: str) -> crl.CertificateList:
        if url in self._by_url:
            return self._by_url[url]
        cached, fetched_at = self._read_cache(url)
        if cached is not None and self._fresh(cached, fetched_at):
            self._by_url[url] = cached
            return cached
        try:
            data, _ = await self.http.get(url)
            if pem.detect(data):
                _, _, data = pem.unarmor(data)
            fetched = crl.CertificateList.load(data)
            fetched.native  # parse fully now: a broken CRL fails here, not mid-validation
        except (OSError, ValueError) as exc:
            if cached is None:
                raise
            log.info("CRL refresh from %s failed (%s); using the cached copy", url, exc)
            fetched = cached
        else:
            self.cache.write(url, fetched.dump())
        self._by_url[url] = fetched
        return fetched

    def crls_by_url(self) -> dict[str, crl.CertificateList]:
        """Every CRL this fetcher handed out, by URL."""
        return dict(self._by_url)

    def _fresh(self, certificate_list: crl.CertificateList, fetched_at: datetime) -> bool:
        """Usable without asking again: before its nextUpdate, and (if the profile sets
        ``crl_cache.max_age_hours``) fetched less than that long ago."""
        now = datetime.now(timezone.utc)
        next_update = certificate_list["tbs_cert_list"]["next_update"].native
        if next_update is None or next_update <= now:
            return False
        max_age = self.http.profile.crl_max_age_hours
        return not (max_age > 0 and fetched_at + timedelta(hours=max_age) < now)

    def _read_cache(self, url: str) -> tuple[crl.CertificateList | None, datetime]:
        """The cached CRL for ``url`` and when it was fetched."""
        data, fetched_at = self.cache.read(url)
        if data is None:
            return None, fetched_at
        try:
            cached = crl.CertificateList.load(data)
            cached.native
            return cached, fetched_at
        except ValueError:
            return None, DiskCache.NEVER

    def fetched_crls(self):
        # Deliberately empty: pyhanko checks every "currently available" CRL against every
        # certificate, so a CRL fetched for one certificate would also be taken as the word
        # on another certificate of a CA with the same name (here: the gen1-2 and gen3
        # "ICAM Test Card Signing CA", which publish different CRLs). A certificate is
        # judged only by the CRLs at its own distribution points (fetched_crls_for_cert).
        return []

    def fetched_crls_for_cert(self, cert):
        return self._by_cert[issuer_serial(cert)]


class MappedOCSPFetcher(OCSPFetcher):
    def __init__(self, http: HttpClient):
        self.http = http
        self._results: dict[tuple, ocsp.OCSPResponse] = {}

    async def fetch(self, cert, authority):
        tag = (issuer_serial(cert), authority.hashable)
        if tag in self._results:
            return self._results[tag]
        request = format_ocsp_request(cert, authority, certid_hash_algo="sha1", request_nonces=True)
        urls = get_ocsp_urls(cert)
        if not urls:
            raise errors.OCSPFetchError("no OCSP responder named in the certificate")
        last: Exception | None = None
        for url in urls:
            try:
                data, _ = await self.http.post(url, request.dump(), "application/ocsp-request")
                response = process_ocsp_response_data(data, ocsp_request=request, ocsp_url=url)
                self._results[tag] = response
                return response
            except (OSError, errors.OCSPValidationError) as exc:
                last = exc
        raise errors.OCSPFetchError(f"no usable OCSP response: {last}")

    def fetched_responses(self):
        return list(self._results.values())

    def fetched_responses_for_cert(self, cert):
        target = issuer_serial(cert)
        return [r for (subject, _), r in self._results.items() if subject == target]


def make_fetchers(profile: TrustProfile, cache_dir: Path | None) -> Fetchers:
    http = HttpClient(profile)
    return Fetchers(
        ocsp_fetcher=MappedOCSPFetcher(http),
        crl_fetcher=CachedCRLFetcher(http, cache_dir),
        cert_fetcher=MappedCertificateFetcher(http, cache_dir),
    )
