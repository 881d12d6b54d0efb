"""A local stand-in for a GSA-style test PKI's web hosts (``station sim pki-mirror``).

Serves, on the loopback interface only:

- the ``http.`` host: ``aia/``, ``sia/`` and ``crls/`` of ``pki/`` by file name;
- one OCSP responder per ``ocsp*.`` host, answering with OpenSSL's ``openssl ocsp``
  responder (signer certificate and key from ``responder/*.p12``, issuing CA certificate
  from ``responder/``, status from the ``responder/*-index.txt`` file of that CA).

Each OCSP host has its own loopback port. OpenSSL 3.0's ``openssl ocsp -port`` always
listens on the wildcard address, so instead of a listening ``openssl ocsp`` the mirror's
loopback HTTP front passes each request to ``openssl ocsp -reqin … -respout …`` (the same
responder code, one run per request, with a deadline).

:func:`write_profile` writes the ``icam-test`` trust profile of EXPECTED.md with a
``url_map`` pointing at the mirror.

The responder keys are copied into a private (0700) working folder named after the mirror's
process id and removed at stop; a mirror killed with SIGKILL cannot remove it, so every start
first removes the folders of mirrors whose process is gone.
"""

from __future__ import annotations

import base64
import http.server
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, pkcs12

from station.errors import StationError

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
FILE_HOST = "http.apl-test.cite.fpki-lab.gov"
OCSP_DEADLINE_S = 10.0
MAX_REQUEST_BYTES = 64 * 1024

#: OCSP host -> (signer .p12 in responder/, index file in responder/). EXPECTED.md names
#: the signer behind each host; the index is the one of the CA that issued the signer.
OCSP_HOSTS: dict[str, tuple[str, str]] = {
    "ocsp.apl-test.cite.fpki-lab.gov": (
        "ICAM_Test_Card_PIV_OCSP_Valid_Signer_gen1-2", "piv-gen1-2-index.txt"),
    "ocspGen3.apl-test.cite.fpki-lab.gov": (
        "ICAM_Test_Card_PIV_OCSP_Valid_Signer_gen3", "piv-gen3-index.txt"),
    "ocspGen3p384.apl-test.cite.fpki-lab.gov": (
        "ICAM_Test_Card_PIV_OCSP_Valid_Signer_P384_gen3", "piv-gen3-p384-index.txt"),
    "ocsp-pivi.apl-test.cite.fpki-lab.gov": (
        "ICAM_Test_Card_PIV-I_OCSP_Valid_Signer_gen3", "pivi-gen3-index.txt"),
    "ocspExpired.apl-test.cite.fpki-lab.gov": (
        "ICAM_Test_Card_PIV_OCSP_Expired_Signer_gen3", "piv-gen3-index.txt"),
    "ocspRevoked.apl-test.cite.fpki-lab.gov": (
        "ICAM_Test_Card_PIV_OCSP_Revoked_Signer_No_Check_Present_gen3", "piv-gen3-index.txt"),
    "ocspNocheckNotPresent.apl-test.cite.fpki-lab.gov": (
        "ICAM_Test_Card_PIV_OCSP_Revoked_Signer_No_Check_Not_Present_gen3", "piv-gen3-index.txt"),
    "ocspInvalidSig.apl-test.cite.fpki-lab.gov": (
        "ICAM_Test_Card_PIV_OCSP_Invalid_Sig_Signer_gen3", "piv-gen3-index.txt"),
    "ocsp-piv.apl-test.fpki-lab.gov": (
        "ICAM_Test_Card_PIV_OCSP_RSA_2048_Valid_Signer_gen3", "piv-rsa-2048-index.txt"),
}

#: The "icam-test" trust profile of EXPECTED.md.
ICAM_TEST_ANCHOR = "pki/roots/00_ICAM_Test_Card_Root_CA.crt"
ICAM_TEST_PIV_AUTH_POLICIES = ["2.16.840.1.101.3.2.1.48.11"]
ICAM_TEST_CARD_AUTH_POLICIES = ["2.16.840.1.101.3.2.1.48.13"]

WORKDIR_PREFIX = "pki-mirror-"

_CONTENT_TYPES = {".p7c": "application/pkcs7-mime", ".crl": "application/pkix-crl",
                  ".crt": "application/pkix-cert", ".cer": "application/pkix-cert"}


class MirrorError(StationError):
    code = "pki-mirror"
    hint = "point --from at a GSA-style PKI folder (pki/ and responder/)"


@dataclass(frozen=True)
class Responder:
    host: str
    signer_cert: Path
    signer_key: Path
    ca_cert: Path
    index: Path


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _FileHandler(http.server.BaseHTTPRequestHandler):
    roots: dict[str, Path] = {}

    def do_GET(self):  # noqa: N802 (http.server API)
        parts = urllib.parse.urlsplit(self.path).path.strip("/").split("/")
        root = self.roots.get(parts[0]) if len(parts) == 2 else None
        name = urllib.parse.unquote(parts[-1])
        target = root / name if root else None
        if target is None or "/" in name or name.startswith(".") or not target.is_file():
            self.send_error(404)
            return
        data = target.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", _CONTENT_TYPES.get(target.suffix, "application/octet-stream"))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        log.debug("pki-mirror http: " + fmt, *args)


def _ocsp_handler(responder: Responder, workdir: Path):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = 0
            if not 0 < length <= MAX_REQUEST_BYTES:
                self.send_error(400)
                return
            self._answer(self.rfile.read(length))

        def do_GET(self):  # noqa: N802 (RFC 6960 §A.1: base64 request in the path)
            try:
                request = base64.b64decode(urllib.parse.unquote(self.path.lstrip("/")), validate=True)
            except ValueError:
                self.send_error(400)
                return
            self._answer(request)

        def _answer(self, request: bytes):
            response = run_openssl_responder(responder, request, workdir)
            if response is None:
                self.send_error(500)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/ocsp-response")
            self.send_header("Content-Length", str(len(response)))
            self.end_headers()
            self.wfile.write(response)

        def log_message(self, fmt, *args):
            log.debug("pki-mirror %s: " + fmt, responder.host, *args)

    return Handler


def run_openssl_responder(responder: Responder, request: bytes, workdir: Path) -> bytes | None:
    """Answer one DER OCSP request with ``openssl ocsp`` acting as the responder."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        req, resp = Path(tmp) / "req.der", Path(tmp) / "resp.der"
        req.write_bytes(request)
        cmd = ["openssl", "ocsp", "-index", str(responder.index), "-CA", str(responder.ca_cert),
               "-rsigner", str(responder.signer_cert), "-rkey", str(responder.signer_key),
               "-rmd", "sha256", "-ndays", "1", "-reqin", str(req), "-respout", str(resp)]
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=OCSP_DEADLINE_S, check=False)
        except subprocess.TimeoutExpired:
            log.warning("openssl ocsp for %s timed out", responder.host)
            return None
        if done.returncode != 0 or not resp.is_file():
            log.warning("openssl ocsp for %s failed: %s", responder.host, done.stderr.decode(errors="replace")[-300:])
            return None
        return resp.read_bytes()


def _issuer_file(signer: x509.Certificate, responder_dir: Path) -> Path:
    """The CA certificate in ``responder/`` that issued ``signer`` (name and key id)."""
    try:
        aki = signer.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        aki = None
    for candidate in sorted(responder_dir.glob("*.crt")):
        try:
            ca = x509.load_pem_x509_certificate(candidate.read_bytes())
        except ValueError:
            continue
        if ca.subject != signer.issuer:
            continue
        try:
            ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except x509.ExtensionNotFound:
            ski = None
        if aki is None or ski == aki:
            return candidate
    raise MirrorError(f"no issuer certificate for {signer.subject.rfc4514_string()} in {responder_dir}")


class PkiMirror:
    """Run the mirror in-process: ``with PkiMirror(dir) as m: m.url_map``."""

    def __init__(self, source: str | Path):
        self.source = Path(source).resolve()
        for sub in ("pki/aia", "pki/sia", "pki/crls", "responder"):
            if not (self.source / sub).is_dir():
                raise MirrorError(f"{self.source} has no {sub}/")
        self.url_map: dict[str, str] = {}
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []
        self._workdir: Path | None = None

    def __enter__(self) -> "PkiMirror":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        remove_stale_workdirs()
        self._workdir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-"))
        self._workdir.chmod(0o700)
        try:
            handler = type("Files", (_FileHandler,), {"roots": {
                name: self.source / "pki" / name for name in ("aia", "sia", "crls")}})
            self.url_map[FILE_HOST] = self._serve(handler)
            for responder in self._responders():
                self.url_map[responder.host.lower()] = self._serve(_ocsp_handler(responder, self._workdir))
        except BaseException:
            self.stop()
            raise

    def _serve(self, handler) -> str:
        server = _Server((LOOPBACK, 0), handler)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        thread.start()
        self._servers.append(server)
        self._threads.append(thread)
        return f"http://{LOOPBACK}:{server.server_address[1]}"

    def _responders(self) -> list[Responder]:
        responder_dir = self.source / "responder"
        out = []
        for host, (signer_name, index_name) in OCSP_HOSTS.items():
            p12, index = responder_dir / f"{signer_name}.p12", responder_dir / index_name
            if not (p12.is_file() and index.is_file()):
                log.info("pki-mirror: no responder material for %s", host)
                continue
            key, cert, _ = pkcs12.load_key_and_certificates(p12.read_bytes(), None)
            if key is None or cert is None:
                raise MirrorError(f"{p12.name} holds no key and certificate")
            key_file = self._workdir / f"{signer_name}.key.pem"
            cert_file = self._workdir / f"{signer_name}.crt.pem"
            key_file.touch(mode=0o600)
            key_file.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
            cert_file.write_bytes(cert.public_bytes(Encoding.PEM))
            out.append(Responder(host, cert_file, key_file, _issuer_file(cert, responder_dir), index))
        return out

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def profile_toml(self) -> str:
        """The ``icam-test`` trust profile of EXPECTED.md, pointed at this mirror."""
        lines = [
            "# icam-test trust profile (EXPECTED.md), written by `station sim pki-mirror`.",
            "# The url_map points at the running mirror; it is valid while the mirror runs.",
            'name = "icam-test"',
            f"anchors = [{_quote(str(self.source / ICAM_TEST_ANCHOR))}]",
            f"piv_auth_policies = [{', '.join(map(_quote, ICAM_TEST_PIV_AUTH_POLICIES))}]",
            f"card_auth_policies = [{', '.join(map(_quote, ICAM_TEST_CARD_AUTH_POLICIES))}]",
            'revocation = "ocsp-then-crl"',
            "offline = true",
            "fetch_timeout = 10",
            "",
            "[crl_cache]",
            "max_age_hours = 0",
            "",
            "[url_map]",
        ]
        lines += [f"{_quote(host)} = {_quote(url)}" for host, url in sorted(self.url_map.items())]
        return "\n".join(lines) + "\n"

    def write_profile(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.profile_toml(), encoding="utf-8")
        return path


def remove_stale_workdirs(tmp: Path | None = None) -> list[Path]:
    """Remove the working folders (responder keys) of mirrors whose process is gone."""
    removed = []
    for path in Path(tmp or tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*-*"):
        pid = path.name[len(WORKDIR_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or path.is_symlink() or not path.is_dir() or path.stat().st_uid != os.geteuid():
            continue
        if not _process_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
