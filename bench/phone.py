"""EST enrollments per second and their latency at 1, 10 and 50 concurrent phones, against the floor.

    .venv/bin/python -m bench.phone [--quick]      (`make bench` runs it with the others)

Side by side in one run, level by level (the floor, then EST, at 1, 10 and 50 clients):

* EST: one enrollment is what a phone does in ``station phone enroll``'s ``simpleenroll`` step:
  make a fresh P-256 key and its PKCS#10 request (ECDSA signature), open one TLS connection to
  the running :class:`station.enrollment.service.EnrollmentService`, check the pinned
  fingerprint, POST the request with HTTP Basic ``user``:``otp`` of a binding, read the base64
  PKCS#7 answer and find the certificate of its key in it. The key and request are in the timed
  loop: a phone makes them per enrollment, and the floor signs once for that reason.
* The floor: the same client loop shape doing the least an enrollment can cost a client and a
  server: one ECDSA P-256 signature (the request's) and a bare TLS handshake to the same server
  (connect, handshake, fingerprint check, close; no HTTP).

The server side is a real ``EnrollmentService`` on 127.0.0.1 (a throwaway station TLS identity
from :func:`station.enrollment.tls.create`, a throwaway P-256 CA) and an issuer thread playing
the engine: woken the moment the service sets an enrollment's ``request_received`` (an Event
that also queues the enrollment for it; the engine's own wait polls every 20 ms, which is the
engine's latency, not the service's), it signs a certificate for the request's key (ECDSA P-256, certificate policy id-fpki-common-derived-pivAuth ...3.40),
sets ``certificate`` and ``policy`` and signals ``delivered``, as the phone target does. The
bindings of a level are made before it is timed (``registry.bind`` is not measured).

The clients run in a separate process (multiprocessing, spawn; blocking ``ssl`` sockets, one
thread per client; ``ssl`` releases the GIL in handshakes and reads): the figures measure the
service process (its event loop thread and the issuer thread, sharing one GIL as they do in
the station), not a load generator competing for that GIL. Both processes share the machine's
cores (2 here), so the CPU the clients spend (reported per operation, as is the service's)
is not free either: neither side's figure is of a dedicated machine. Each level runs a fixed
count of closed-loop operations (a client starts its next one when the last one ended), after
an untimed warm-up; throughput is operations over the wall time from the first start to the
last end, latency is each operation's from the key's generation to the parsed answer.

Targets (issue): >= 100 enrollments/s (best level), p99 <= 250 ms at 50 clients, within 3x of
the floor (its throughput over EST's at 50 clients).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import itertools
import math
import multiprocessing
import queue
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.results import record, table  # noqa: E402

LEVELS = (1, 10, 50)
COUNTS = {1: 300, 10: 500, 50: 1000}  # operations per level (for EST and for the floor)
QUICK_COUNTS = {1: 10, 10: 20, 50: 50}
WARMUP = 50
AAL2_POLICY = "2.16.840.1.101.3.2.1.3.40"  # id-fpki-common-derived-pivAuth
TARGET_RATE, TARGET_P99_MS, TARGET_FLOOR_RATIO = 100.0, 250.0, 3.0
CLIENT_TIMEOUT = 30.0
PHONE_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "phone")])


# --- the station side: the service, a throwaway CA and the issuer thread -------------------------------
class _Secrets:
    """The secret store tls.create puts the key's passphrase into (a dict: nothing is kept)."""

    def __init__(self):
        self.values: dict[str, str] = {}

    def put(self, name: str, value: str) -> None:
        self.values[name] = value

    def get(self, name: str) -> str | None:
        return self.values.get(name)


def throwaway_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "Bench Derived PIV CA")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


class _Received(threading.Event):
    """An enrollment's ``request_received`` that also hands the enrollment to the issuer when set."""

    def __init__(self, inbox: queue.SimpleQueue):
        super().__init__()
        self.inbox, self.enrollment = inbox, None

    def set(self) -> None:
        super().set()
        self.inbox.put(self.enrollment)


class Issuer:
    """Plays the engine for every enrollment bound through :meth:`enrollment`: one thread, woken
    when the service sets ``request_received``; signs the request's key, sets ``certificate`` and
    ``policy`` and signals ``delivered`` (as PhoneTarget.install_certificate; it does not wait
    for ``sent``: :meth:`Station.settle` checks it after the level)."""

    def __init__(self, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey):
        self.ca_cert, self.ca_key = ca_cert, ca_key
        self.ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.issued = 0
        self.thread = threading.Thread(target=self._run, name="bench-issuer", daemon=True)
        self.thread.start()

    def enrollment(self, request_id: int):
        from station.enrollment.binding import Enrollment

        received = _Received(self.inbox)
        received.enrollment = Enrollment(request_id, "AAL2", request_received=received)
        return received.enrollment

    def _run(self) -> None:
        while (enrollment := self.inbox.get()) is not None:
            assert enrollment.request_received.is_set()
            key = x509.load_der_x509_csr(enrollment.csr_der).public_key()
            now = dt.datetime.now(dt.timezone.utc)
            cert = (x509.CertificateBuilder()
                    .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Bench Phone {enrollment.request_id}")]))
                    .issuer_name(self.ca_cert.subject).public_key(key).serial_number(x509.random_serial_number())
                    .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=365))
                    .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
                    .add_extension(x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(AAL2_POLICY), None)]),
                                   critical=False)
                    .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(self.ski), critical=False)
                    .sign(self.ca_key, hashes.SHA256()))
            enrollment.policy, enrollment.certificate = AAL2_POLICY, cert
            enrollment.signal(enrollment.delivered)
            self.issued += 1

    def stop(self) -> None:
        self.inbox.put(None)
        self.thread.join(10)


class Station:
    """A running EnrollmentService with its issuer, on 127.0.0.1 (a free port)."""

    def __init__(self, work: Path):
        from station.enrollment import tls
        from station.enrollment.service import EnrollmentService
        from station.home import StationHome

        ca_cert, ca_key = throwaway_ca()
        identity = tls.create(StationHome(work / "home"), _Secrets(), "127.0.0.1", "bench-phone-station")
        self.service = EnrollmentService(identity, ca_cert, host="127.0.0.1", port=0).start()
        self.issuer = Issuer(ca_cert, ca_key)
        self._ids = itertools.count(1)

    def bind(self, n: int) -> tuple[list, list[tuple[str, str]]]:
        """``n`` new bindings: their enrollments, and (simpleenroll path, Basic credentials) each."""
        enrollments, items = [], []
        for _ in range(n):
            enrollment = self.issuer.enrollment(next(self._ids))
            otp = self.service.registry.bind(enrollment)
            enrollments.append(enrollment)
            path = f"/.well-known/est/{enrollment.label}/simpleenroll"
            items.append((path, base64.b64encode(f"{enrollment.user}:{otp}".encode()).decode()))
        return enrollments, items

    def settle(self, enrollments: list) -> int:
        """After a level: how many enrollments the phone took (``sent``); their bindings dropped."""
        taken = sum(e.sent.wait(5) for e in enrollments)
        for enrollment in enrollments:
            self.service.registry.drop(enrollment)
        return taken

    def close(self) -> None:
        self.issuer.stop()
        self.service.stop()


# --- the client side (its own process) ------------------------------------------------------------------
def _client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # as station/phone/client.py's PinnedEst
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # trust comes from the pinned fingerprint
    return context


def _connect(context: ssl.SSLContext, host: str, port: int, fp: str) -> ssl.SSLSocket:
    tls = context.wrap_socket(socket.create_connection((host, port), timeout=CLIENT_TIMEOUT))
    if hashlib.sha256(tls.getpeercert(binary_form=True) or b"").hexdigest() != fp:
        tls.close()
        raise RuntimeError("the server's certificate is not the pinned one")
    return tls


def _read_response(tls: ssl.SSLSocket) -> tuple[int, bytes]:
    """One HTTP/1.1 response: (status, body), Content-Length or chunked (aiohttp's StreamResponse)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        if not chunk:
            raise RuntimeError(f"the connection closed inside the headers: {data[:200]!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
    if b"content-length" in headers:
        length = int(headers[b"content-length"])
        while len(rest) < length:
            chunk = tls.recv(65536)
            if not chunk:
                raise RuntimeError("the connection closed inside the body")
            rest += chunk
        return status, rest[:length]
    while not rest.endswith(b"0\r\n\r\n"):
        chunk = tls.recv(65536)
        if not chunk:
            raise RuntimeError("the connection closed inside the chunked body")
        rest += chunk
    body = b""
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return status, body
        body, rest = body + rest[:size], rest[size + 2:]


def est_enroll(context: ssl.SSLContext, host: str, port: int, fp: str, path: str, basic: str) -> float:
    """One enrollment as a phone does it; its seconds."""
    start = time.perf_counter()
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(PHONE_NAME).sign(key, hashes.SHA256())
    body = base64.encodebytes(csr.public_bytes(serialization.Encoding.DER))
    request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/pkcs10\r\n"
               f"Content-Transfer-Encoding: base64\r\nAuthorization: Basic {basic}\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    tls = _connect(context, host, port, fp)
    try:
        tls.sendall(request)
        status, answer = _read_response(tls)
    finally:
        tls.close()
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {answer[:200]!r}")
    certificates = pkcs7.load_der_pkcs7_certificates(base64.b64decode(answer))
    if not any(c.public_key() == key.public_key() for c in certificates):
        raise RuntimeError("the answer holds no certificate of the request's key")
    return time.perf_counter() - start


_FLOOR_KEY = None


def floor_once(context: ssl.SSLContext, host: str, port: int, fp: str) -> float:
    """The floor: one ECDSA P-256 signature and a bare TLS handshake (no HTTP); its seconds."""
    start = time.perf_counter()
    _FLOOR_KEY.sign(b"a phone's certification request", ec.ECDSA(hashes.SHA256()))
    _connect(context, host, port, fp).close()
    return time.perf_counter() - start


def run_level(kind: str, concurrency: int, items: list, host: str, port: int, fp: str) -> dict:
    """``len(items)`` operations by ``concurrency`` client threads (closed loop): latencies (s),
    wall seconds, this process's CPU seconds, errors."""
    global _FLOOR_KEY
    if _FLOOR_KEY is None:
        _FLOOR_KEY = ec.generate_private_key(ec.SECP256R1())
    context = _client_context()
    latencies: list[float] = []
    errors: list[str] = []
    next_item = iter(items).__next__  # one C call under the GIL: safe across the client threads
    lock = threading.Lock()
    barrier = threading.Barrier(concurrency + 1)

    def client() -> None:
        barrier.wait()
        while True:
            try:
                item = next_item()
            except StopIteration:
                return
            try:
                seconds = est_enroll(context, host, port, fp, *item) if kind == "est" else floor_once(context, host, port, fp)
            except Exception as exc:  # noqa: BLE001 - counted and reported, the level goes on
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                latencies.append(seconds)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    cpu = time.process_time()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return {"latencies": latencies, "wall": time.perf_counter() - start, "cpu": time.process_time() - cpu, "errors": errors}


def client_process(conn) -> None:
    """The client process: runs each level it is sent, answers its result; None ends it."""
    while (job := conn.recv()) is not None:
        conn.send(run_level(*job))


# --- one run ---------------------------------------------------------------------------------------------------
@dataclass
class Level:
    kind: str
    concurrency: int
    count: int
    rate: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms: float  # the service process's CPU per operation (event loop + issuer threads)
    client_cpu_ms: float
    errors: list[str]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]  # nearest rank


def measure(levels=LEVELS, counts=COUNTS, warmup: int = WARMUP) -> list[Level]:
    """The floor and EST at each level of concurrency, in one run (one service, one client process)."""
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-phone-") as tmp:
        station = Station(Path(tmp))
        spawn = multiprocessing.get_context("spawn")
        parent, child = spawn.Pipe()
        process = spawn.Process(target=client_process, args=(child,), daemon=True)
        process.start()
        where = ("127.0.0.1", station.service.port, station.service.fingerprint)

        def run(kind: str, concurrency: int, count: int) -> Level:
            enrollments, items = station.bind(count) if kind == "est" else ([], [None] * count)
            cpu = time.process_time()
            parent.send((kind, concurrency, items, *where))
            done = parent.recv()
            server_cpu = time.process_time() - cpu
            errors = done["errors"]
            if kind == "est":
                taken = station.settle(enrollments)
                if taken != len(done["latencies"]):
                    errors = [*errors, f"{taken} certificates sent for {len(done['latencies'])} enrollments"]
            n, latencies = len(done["latencies"]), done["latencies"]
            return Level(kind, concurrency, n, n / done["wall"] if n else 0.0,
                         statistics.median(latencies) * 1000 if n else float("nan"),
                         percentile(latencies, 0.99) * 1000 if n else float("nan"),
                         server_cpu / count * 1000, done["cpu"] / count * 1000, errors)

        try:
            if warmup:
                for kind in ("floor", "est"):
                    run(kind, min(10, max(levels)), warmup)
            for concurrency in levels:
                for kind in ("floor", "est"):
                    results.append(run(kind, concurrency, counts[concurrency]))
        finally:
            parent.send(None)
            process.join(10)
            station.close()
    return results


def report(results: list[Level]) -> tuple[list[str], list[dict]]:
    """The table, the targets as pass/fail lines, and results.json's entries."""
    by = {(r.kind, r.concurrency): r for r in results}
    levels = sorted({r.concurrency for r in results})
    rows = []
    for c in levels:
        est, floor = by["est", c], by["floor", c]
        rows.append((c, est.count, f"{est.rate:.0f}", f"{est.p50_ms:.1f}", f"{est.p99_ms:.1f}",
                     f"{floor.rate:.0f}", f"{floor.p50_ms:.1f}", f"{floor.p99_ms:.1f}",
                     f"{floor.rate / est.rate:.2f}x", f"{est.p99_ms / floor.p99_ms:.2f}x",
                     f"{est.server_cpu_ms:.2f} / {floor.server_cpu_ms:.2f}", f"{est.client_cpu_ms:.2f} / {floor.client_cpu_ms:.2f}"))
    lines = [table(rows, ("clients", "n", "EST enroll/s", "p50 ms", "p99 ms", "floor ops/s", "p50 ms", "p99 ms",
                          "floor/EST rate", "EST/floor p99", "service CPU ms/op EST / floor", "client CPU ms/op EST / floor"))]
    best = max(by["est", c].rate for c in levels)
    top = max(levels)
    est_top, floor_top = by["est", top], by["floor", top]
    verdict = lambda ok: "PASS" if ok else "FAIL"  # noqa: E731
    lines += [
        "",
        f"{verdict(best >= TARGET_RATE)}  >= {TARGET_RATE:.0f} enrollments/s (best level): {best:.0f}/s",
        f"{verdict(est_top.p99_ms <= TARGET_P99_MS)}  p99 <= {TARGET_P99_MS:.0f} ms at {top} clients: {est_top.p99_ms:.1f} ms",
        f"{verdict(floor_top.rate / est_top.rate <= TARGET_FLOOR_RATIO)}  within {TARGET_FLOOR_RATIO:.0f}x of the floor "
        f"(throughput at {top} clients): floor {floor_top.rate:.0f}/s / EST {est_top.rate:.0f}/s = {floor_top.rate / est_top.rate:.2f}x",
    ]
    for r in results:
        if r.errors:
            lines.append(f"ERRORS  {r.kind} at {r.concurrency} clients: {len(r.errors)}, first: {r.errors[0]}")
    floor_peer = "floor: bare TLS handshake + one ECDSA P-256 signature, same clients"
    entries = []
    for c in levels:
        est, floor = by["est", c], by["floor", c]
        entries += [
            {"name": f"phone.est_enroll.c{c}", "value": round(est.rate, 1), "unit": "enrollments/s", "peer": floor_peer,
             "peer_value": round(floor.rate, 1), "ratio": round(est.rate / floor.rate, 3)},
            {"name": f"phone.est_enroll_p99.c{c}", "value": round(est.p99_ms, 2), "unit": "ms", "peer": floor_peer,
             "peer_value": round(floor.p99_ms, 2), "ratio": round(est.p99_ms / floor.p99_ms, 3)},
        ]
    return lines, entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny runs (smoke test; results.json is left alone)")
    args = parser.parse_args(argv)
    results = measure(counts=QUICK_COUNTS if args.quick else COUNTS, warmup=10 if args.quick else WARMUP)
    lines, entries = report(results)
    print("\n".join(lines))
    print("\nlatency: from the phone's key generation to the parsed PKCS#7 answer (floor: signature + handshake);"
          " CPU ms/op: each process's CPU time over the level / operations (2 cores shared by both processes)")
    if not args.quick:
        record(entries)
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
