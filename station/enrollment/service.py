"""The EST enrollment service (RFC 7030) a phone enrolls through, on aiohttp, off the GUI thread.

One :class:`EnrollmentService` per open station runs an asyncio event loop on its own thread
and serves HTTPS (TLS 1.2 and 1.3 only, the station's own certificate: :mod:`.tls`) under
``https://HOST:PORT/.well-known/est/<label>/``:

- ``cacerts`` — the derived PIV CA, PKCS#7 certs-only, base64 (RFC 7030 §4.1.3);
- ``csrattrs`` — what the request should be: an EC P-256 key, ECDSA with SHA-256 (§4.5.2);
- ``simpleenroll`` — HTTP Basic with the binding's user and one-time secret, a base64 PKCS#10
  in, the issued certificate as base64 PKCS#7 certs-only out (§4.2); a key attestation chain
  may come in the ``DPIV-Key-Attestation`` header (base64 DER certificates, leaf first,
  comma-separated; :mod:`.android_attestation`);
- ``activate`` and ``selftest`` — mutual TLS with the newly issued credential: the phone
  reports that its key is now behind the applicant's PIN (step 6), then asks the station to
  check the credential it just proved possession of in the handshake (step 7; JSON answer).

The request decides nothing of the certificate: it is checked (key type, signature) and the
engine issues from the applicant's PKI-AUTH identity. Refused secrets (wrong, expired, spent,
unknown label) get 401 and an audit event. Limits: request body size (413), a deadline for a
request's headers (aiohttp's keep-alive timer runs from the connection's start) and for its
body (408), a TLS handshake deadline and a bound on open connections (others are closed at
once): one slow or hostile client cannot hold the service.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ssl
import threading
from dataclasses import dataclass
from typing import Callable

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from station.enrollment.binding import BindingRefused, BindingRegistry, Enrollment
from station.enrollment.tls import TlsIdentity

ATTESTATION_HEADER = "DPIV-Key-Attestation"
PKCS7_CERTS = "application/pkcs7-mime; smime-type=certs-only"
# csrattrs: SEQUENCE { ecdsa-with-SHA256, Attribute { id-ecPublicKey, SET { secp256r1 } } } (RFC 7030 §4.5.2)
CSR_ATTRS = bytes.fromhex("3021" "06082a8648ce3d040302" "3015" "06072a8648ce3d0201" "310a" "06082a8648ce3d030107")
CURVES = {"secp256r1": "P-256", "secp384r1": "P-384"}


@dataclass(frozen=True)
class Limits:
    max_body: int = 16 * 1024
    header_seconds: float = 10.0
    body_seconds: float = 10.0
    handshake_seconds: float = 10.0
    max_connections: int = 64
    enroll_wait_seconds: float = 60.0  # from the request to the certificate


@dataclass
class Hooks:
    """What the service asks of the station (called off the event loop)."""
    audit: Callable[[int | None, str, dict], None] = lambda request_id, action, details: None
    is_revoked: Callable[[str], bool] = lambda serial: False
    verify_attestation: Callable[[list[x509.Certificate], object, bytes], dict[str, str] | str] = \
        lambda chain, public_key, challenge: "no attestation roots are configured"


def _text(status: int, reason: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=reason + "\n", headers=headers)


def _unauthorized(reason: str) -> web.Response:
    """401 with the HTTP Basic challenge (RFC 7030 §3.2.3, RFC 7617)."""
    return _text(401, reason, **{"WWW-Authenticate": 'Basic realm="estrealm"'})


def key_name(public_key) -> str | None:
    """The key types a phone may send: EC P-256 or P-384, RSA 2048 and up; else None."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return CURVES.get(public_key.curve.name)
    if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size >= 2048:
        return f"RSA-{public_key.key_size}"
    return None


def certs_only(certificates: list[x509.Certificate]) -> bytes:
    """Base64 PKCS#7 certs-only (RFC 7030 §4.1.3 / §4.2.3), in 64-character lines."""
    der = pkcs7.serialize_certificates(certificates, serialization.Encoding.DER)
    return base64.encodebytes(der)


class EnrollmentService:
    def __init__(self, identity: TlsIdentity, ca_certificate: x509.Certificate, *, host: str = "127.0.0.1", port: int = 0,
                 registry: BindingRegistry | None = None, limits: Limits = Limits(), hooks: Hooks = Hooks()):
        self.identity, self.ca, self.host, self.port = identity, ca_certificate, host, port
        self.registry = registry or BindingRegistry()
        self.limits, self.hooks = limits, hooks
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    # --- where it is ---------------------------------------------------------------------------
    def base_url(self, label: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}/.well-known/est/{label}/"

    @property
    def fingerprint(self) -> str:
        return self.identity.fingerprint

    # --- running ---------------------------------------------------------------------------------
    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.identity.cert_path, self.identity.key_path, password=self.identity.passphrase)
        context.verify_mode = ssl.CERT_OPTIONAL  # a client certificate only for activate and selftest
        context.load_verify_locations(cadata=self.ca.public_bytes(serialization.Encoding.PEM).decode())
        return context

    def start(self) -> EnrollmentService:
        """Listen (the actual port in ``self.port`` when 0 was asked); returns once it serves."""
        ready, failed = threading.Event(), []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(ready))
            except BaseException as exc:  # noqa: BLE001 - handed to start()'s caller
                failed.append(exc)
                ready.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="enrollment-service", daemon=True)
        self._thread.start()
        ready.wait()
        if failed:
            raise failed[0]
        return self

    async def _serve(self, ready: threading.Event) -> None:
        app = web.Application(client_max_size=self.limits.max_body)
        base = "/.well-known/est/{label}/"
        app.add_routes([web.get(base + "cacerts", self._cacerts), web.get(base + "csrattrs", self._csrattrs),
                        web.post(base + "simpleenroll", self._simpleenroll), web.post(base + "activate", self._activate),
                        web.post(base + "selftest", self._selftest)])
        runner = web.AppRunner(app, access_log=None, keepalive_timeout=self.limits.header_seconds, handler_cancellation=True)
        await runner.setup()
        handler = runner.server
        loop = asyncio.get_running_loop()

        def protocol():
            if len(handler.connections) >= self.limits.max_connections:
                return _Refuse()
            return handler()

        server = await loop.create_server(protocol, self.host, self.port, ssl=self._ssl_context(),
                                          ssl_handshake_timeout=self.limits.handshake_seconds, backlog=128)
        self.port = server.sockets[0].getsockname()[1]
        self._stopped = asyncio.Event()
        ready.set()
        try:
            await self._stopped.wait()
        finally:
            server.close()
            await runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(10)
            self._thread = None

    # --- helpers -----------------------------------------------------------------------------------
    async def _off_loop(self, call, *args):
        return await asyncio.get_running_loop().run_in_executor(None, call, *args)

    async def _refuse(self, refused: BindingRefused, label: str) -> web.Response:
        await self._off_loop(self.hooks.audit, refused.request_id, "enrollment.refused",
                             {"reason": refused.reason.value, "label": label})
        return _unauthorized(f"enrollment refused: {refused.reason.value}")

    def _enrollment(self, request: web.Request) -> Enrollment:
        enrollment = self.registry.find(request.match_info["label"])
        if enrollment is None:
            raise web.HTTPNotFound(text="no such enrollment label\n")
        return enrollment

    async def _wait(self, enrollment: Enrollment, event: threading.Event, seconds: float) -> bool:
        """Until ``event`` is set (True), the station stops waiting or ``seconds`` pass (False)."""
        loop, woken = asyncio.get_running_loop(), asyncio.Event()
        waker = lambda: loop.call_soon_threadsafe(woken.set)  # noqa: E731
        enrollment.wakers.append(waker)
        try:
            deadline = loop.time() + seconds
            while not event.is_set() and not enrollment.ended and loop.time() < deadline:
                try:
                    await asyncio.wait_for(woken.wait(), deadline - loop.time())
                except TimeoutError:
                    break
                woken.clear()
            return event.is_set()
        finally:
            enrollment.wakers.remove(waker)

    @staticmethod
    def _client_certificate(request: web.Request) -> x509.Certificate | None:
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        return x509.load_der_x509_certificate(der) if der else None

    # --- EST -----------------------------------------------------------------------------------------
    async def _cacerts(self, request: web.Request) -> web.Response:
        self._enrollment(request)
        return web.Response(body=certs_only([self.ca]), headers={"Content-Type": "application/pkcs7-mime",
                                                                 "Content-Transfer-Encoding": "base64"})

    async def _csrattrs(self, request: web.Request) -> web.Response:
        self._enrollment(request)
        return web.Response(body=base64.encodebytes(CSR_ATTRS), headers={"Content-Type": "application/csrattrs",
                                                                          "Content-Transfer-Encoding": "base64"})

    async def _simpleenroll(self, request: web.Request) -> web.StreamResponse:
        label = request.match_info["label"]
        try:
            user, _, otp = base64.b64decode(request.headers["Authorization"].removeprefix("Basic ")).decode().partition(":")
        except (KeyError, ValueError, UnicodeDecodeError, binascii.Error):
            return _unauthorized("HTTP Basic authentication with the enrollment code is needed")
        try:
            enrollment = self.registry.check(label, user, otp)
        except BindingRefused as refused:
            return await self._refuse(refused, label)
        if request.content_type != "application/pkcs10":
            return _text(415, "the request must be application/pkcs10")
        try:
            async with asyncio.timeout(self.limits.body_seconds):
                body = await request.read()
        except TimeoutError:
            return _text(408, "the request body came too slowly")
        try:
            csr = x509.load_der_x509_csr(base64.b64decode(body))
        except (ValueError, binascii.Error):
            return _text(400, "the body is not a base64 PKCS#10 request")
        kind = key_name(csr.public_key())
        if kind is None:
            return _text(400, "the key must be EC P-256 or P-384, or RSA of 2048 bits or more")
        if not csr.is_signature_valid:
            return _text(400, "the request's signature does not verify with its key (no proof of possession)")
        attested: dict[str, str] = {}
        if ATTESTATION_HEADER in request.headers:
            try:
                chain = [x509.load_der_x509_certificate(base64.b64decode(part))
                         for part in request.headers[ATTESTATION_HEADER].split(",")]
            except (ValueError, binascii.Error):
                return _text(400, f"the {ATTESTATION_HEADER} header is not base64 DER certificates")
            verdict = await self._off_loop(self.hooks.verify_attestation, chain, csr.public_key(), enrollment.challenge)
            if isinstance(verdict, str):
                if enrollment.aal == "AAL3":
                    return await self._aal3_refused(enrollment, label, verdict)
            else:
                attested = verdict
        elif enrollment.aal == "AAL3":
            return await self._aal3_refused(enrollment, label, "no key attestation was sent")
        try:
            enrollment = self.registry.consume(label, user, otp)
        except BindingRefused as refused:
            return await self._refuse(refused, label)
        enrollment.csr_der, enrollment.attested = csr.public_bytes(serialization.Encoding.DER), {"key": kind, **attested}
        enrollment.signal(enrollment.request_received)
        enrollment.on_event("enrolling", f"the phone sent its {kind} key's request")
        if not await self._wait(enrollment, enrollment.delivered, self.limits.enroll_wait_seconds):
            return _text(503, f"the station did not issue the certificate: {enrollment.ended or 'it took too long'}",
                         **{"Retry-After": "0"} if not enrollment.ended else {})
        response = web.StreamResponse(headers={"Content-Type": PKCS7_CERTS, "Content-Transfer-Encoding": "base64"})
        await response.prepare(request)
        await response.write(certs_only([enrollment.certificate]))
        await response.write_eof()
        enrollment.signal(enrollment.sent)
        enrollment.on_event("enrolled", "the certificate is on the phone")
        return response

    async def _aal3_refused(self, enrollment: Enrollment, label: str, why: str) -> web.Response:
        await self._off_loop(self.hooks.audit, enrollment.request_id, "enrollment.refused",
                             {"reason": "aal3-needs-attestation", "label": label, "detail": why})
        enrollment.on_event("refused", f"AAL3 needs a verified key attestation: {why}", False)
        return _text(403, f"AAL3 needs a verified hardware key attestation: {why}")

    # --- the station's steps 6 and 7, over mutual TLS ------------------------------------------------------
    def _credential(self, request: web.Request) -> tuple[Enrollment, x509.Certificate]:
        enrollment = self._enrollment(request)
        presented = self._client_certificate(request)
        if presented is None or enrollment.certificate is None or presented != enrollment.certificate:
            raise web.HTTPForbidden(text="present the credential this enrollment issued as the TLS client certificate\n")
        return enrollment, presented

    async def _activate(self, request: web.Request) -> web.Response:
        enrollment, _ = self._credential(request)
        enrollment.signal(enrollment.activated)
        enrollment.on_event("activated", "the phone protects the key with the applicant's PIN")
        return web.json_response({"activated": True})

    async def _selftest(self, request: web.Request) -> web.Response:
        from station.issuance.selftest import check_certificate

        enrollment, presented = self._credential(request)
        if not enrollment.activated.is_set():
            return _text(409, "activate the credential first")
        result = check_certificate(presented, self.ca, enrollment.policy, possession=True)  # the handshake signed
        result.checks["not_revoked"] = not await self._off_loop(self.hooks.is_revoked, format(presented.serial_number, "x"))
        result.finish()
        enrollment.selftest = result
        enrollment.signal(enrollment.tested)
        enrollment.on_event("selftest", result.detail, result.passed)
        return web.json_response({"passed": result.passed, "checks": result.checks, "detail": result.detail,
                                  "serial": format(presented.serial_number, "x"), "policy_oid": enrollment.policy})


class _Refuse(asyncio.Protocol):
    """Over the connection bound: closed at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.abort()
