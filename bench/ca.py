"""Benchmark of the issuing CA against the OpenSSL command line doing the same work, in one run.

    .venv/bin/python bench/ca.py [--quick]      (or: python -m bench.ca; `make bench` runs it)

* Derived PIV Authentication certificates per second from P-256 CSRs (CSR signature checked,
  full profile, DER out) with the CA key in an encrypted file (decrypted once) and in SoftHSM2,
  against a loop of ``openssl x509 -req`` (the same extensions from an extfile, a fresh
  urn:uuid per certificate; the SoftHSM key through libengine-pkcs11-openssl). The openssl
  loop pays a process start and, with a key file, OpenSSL 3's key decoding per certificate:
  that is the command-line loop the target names, not OpenSSL's signing speed.
* The whole service path (applicant, request, approval, issuance: four transactions with
  audit events, SQLite) in certificates per second, against the same openssl loop.
* A CRL with 100,000 revoked entries, against ``openssl ca -gencrl`` over an index of
  100,000 revoked certificates.

``ratio`` is value / peer_value, as in the other benchmarks' entries: above 1 is ahead for
certificates per second, below 1 is ahead for seconds. Results are merged into
bench/results.json (entries of other benchmarks are kept).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.results import RESULTS, record  # noqa: E402
from station.audit.log import AuditLog  # noqa: E402
from station.ca.ca import IssuingCA, Revocation, self_signed_ca_certificate  # noqa: E402
from station.ca.pkcs11_signer import Pkcs11Signer, generate_on_token  # noqa: E402
from station.ca.profile import CsrProof, ProfileSettings, plan_certificate  # noqa: E402
from station.ca.signer import PrivateKeySigner  # noqa: E402

SOFTHSM = "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"
ENGINE = "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so"
PIN = "123456"
SETTINGS = ProfileSettings(ca_issuers_url="http://pki.bench.test/ca.p7c", crl_url="http://pki.bench.test/ca.crl")
EXTFILE = """[v3]
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth, 1.3.6.1.5.2.3.4
certificatePolicies = 2.16.840.1.101.3.2.1.3.40
subjectAltName = URI:urn:uuid:{uuid}
authorityInfoAccess = caIssuers;URI:http://pki.bench.test/ca.p7c
crlDistributionPoints = URI:http://pki.bench.test/ca.crl
"""


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def piv_subject() -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "U.S. Government"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Department of Benchmarks"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Jane Q. Public"),
        ]
    )


def piv_auth_cert() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bench PIV Issuer")])
    return (
        x509.CertificateBuilder()
        .subject_name(piv_subject())
        .issuer_name(issuer)
        .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now() - dt.timedelta(days=1))
        .not_valid_after(now() + dt.timedelta(days=5 * 365))
        .sign(key, hashes.SHA256())
    )


def make_csrs(n: int, work: Path) -> list[tuple[bytes, Path]]:
    out = []
    for i in range(n):
        key = ec.generate_private_key(ec.SECP256R1())
        pem = x509.CertificateSigningRequestBuilder().subject_name(piv_subject()).sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
        path = work / f"req{i}.csr"
        path.write_bytes(pem)
        out.append((pem, path))
    return out


def station_rate(ca: IssuingCA, piv: x509.Certificate, csrs: list[tuple[bytes, Path]]) -> float:
    start = time.perf_counter()
    for pem, _ in csrs:
        key = CsrProof(pem).verified_public_key()
        plan = plan_certificate(issuer=ca.certificate, subject_key=key, piv_auth=piv, aal="AAL2", target="software", settings=SETTINGS)
        der = ca.issue(plan).public_bytes(serialization.Encoding.DER)
    rate = len(csrs) / (time.perf_counter() - start)
    x509.load_der_x509_certificate(der).verify_directly_issued_by(ca.certificate)
    return rate


def openssl_rate(csrs: list[tuple[bytes, Path]], ca_pem: Path, ca_key_args: list[str], work: Path, env: dict[str, str]) -> float:
    _openssl_x509(0, csrs[0][1], ca_pem, ca_key_args, work, env)  # warm-up: page cache, engine
    start = time.perf_counter()
    for i, (_, path) in enumerate(csrs):
        _openssl_x509(i, path, ca_pem, ca_key_args, work, env)
    rate = len(csrs) / (time.perf_counter() - start)
    last = x509.load_der_x509_certificate((work / f"o{len(csrs) - 1}.der").read_bytes())
    last.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem.read_bytes()))  # the peer did real work
    return rate


def _openssl_x509(i: int, path: Path, ca_pem: Path, ca_key_args: list[str], work: Path, env: dict[str, str]) -> None:
    """One certificate the way a shell loop makes it: an extfile with a fresh UUID, one process."""
    ext = work / f"ext{i}.cnf"
    ext.write_text(EXTFILE.format(uuid=uuid.uuid4()))
    subprocess.run(
        ["openssl", "x509", "-req", "-in", str(path), "-CA", str(ca_pem), *ca_key_args, "-set_serial", "0x" + secrets.token_hex(19),
         "-days", "1095", "-sha256", "-extfile", str(ext), "-extensions", "v3", "-outform", "DER", "-out", str(work / f"o{i}.der")],
        check=True, capture_output=True, env=env,
    )  # fmt: skip


def service_rate(ca: IssuingCA, piv_certs: list[x509.Certificate], csrs: list[tuple[bytes, Path]], work: Path) -> float:
    """The whole service path on SQLite: applicant, request, approval, issuance with audit."""
    from station.home import StationHome
    from station.records.database import open_database
    from station.terms import AuthMethod, Role
    from station.service import issuance, operators
    from station.service.station import Station

    audit_key = PrivateKeySigner(ec.generate_private_key(ec.SECP256R1()))
    config = {"station_id": str(uuid.uuid4()), "profile": {"ca_issuers_url": SETTINGS.ca_issuers_url, "crl_url": SETTINGS.crl_url}}
    db = open_database(f"sqlite:///{work / 'bench.db'}")
    st = Station(StationHome(work / "home"), config, db, AuditLog(config["station_id"], audit_key), _ca=ca)
    with db.transaction() as s:
        st.audit.register_key(s)
    operators.add_operator(st, "reg", display_name="R", roles=[Role.REGISTRAR], auth_method=AuthMethod.PIV, actor="bench")
    operators.add_operator(st, "app", display_name="A", roles=[Role.SUPERVISOR], auth_method=AuthMethod.PIV, actor="bench")
    start = time.perf_counter()
    for piv, (pem, _) in zip(piv_certs, csrs):
        _, pac = issuance.record_applicant(st, piv, actor="reg")
        req = issuance.open_request(st, pac, aal="AAL2", target_kind="software", registrar="reg")
        issuance.approve_request(st, req, approver="app")
        issuance.issue_certificate(st, req, CsrProof(pem), actor="reg")
    rate = len(csrs) / (time.perf_counter() - start)
    db.close()
    return rate


def crl_seconds(ca: IssuingCA, n: int) -> float:
    t = now()
    entries = [Revocation(x509.random_serial_number(), t, x509.ReasonFlags.key_compromise) for _ in range(n)]
    ca.crl_der(entries[:10], number=1, this_update=t, next_update=t)  # warm-up: the station is a running process
    start = time.perf_counter()
    der = ca.crl_der(entries, number=1, this_update=t, next_update=t + dt.timedelta(days=1))
    elapsed = time.perf_counter() - start
    assert len(x509.load_der_x509_crl(der)) == n
    return elapsed


def openssl_crl_seconds(n: int, ca_pem: Path, ca_key: Path, work: Path) -> float:
    d = work / "openssl-ca"
    d.mkdir()
    expiry = (now() + dt.timedelta(days=365)).strftime("%y%m%d%H%M%SZ")
    revoked = now().strftime("%y%m%d%H%M%SZ")
    with (d / "index.txt").open("w") as fh:
        for i in range(n):
            serial = format(x509.random_serial_number(), "X")
            serial = serial if len(serial) % 2 == 0 else "0" + serial
            fh.write(f"R\t{expiry}\t{revoked},keyCompromise\t{serial}\tunknown\t/CN=holder{i}\n")
    (d / "crlnumber").write_text("01\n")
    (d / "ca.cnf").write_text(
        f"[ca]\ndefault_ca = d\n[d]\ndatabase = {d / 'index.txt'}\ncrlnumber = {d / 'crlnumber'}\n"
        "default_md = sha256\ndefault_crl_days = 1\ncrl_extensions = crl_ext\n[crl_ext]\nauthorityKeyIdentifier = keyid:always\n"
    )
    start = time.perf_counter()
    subprocess.run(
        ["openssl", "ca", "-gencrl", "-config", str(d / "ca.cnf"), "-keyfile", str(ca_key), "-cert", str(ca_pem), "-out", str(d / "crl.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    check = subprocess.run(["openssl", "crl", "-in", str(d / "crl.pem"), "-CAfile", str(ca_pem), "-noout"], capture_output=True, text=True)
    assert "verify OK" in check.stdout + check.stderr, check.stderr
    return elapsed


def softhsm_env(work: Path) -> dict[str, str]:
    (work / "tokens").mkdir()
    conf = work / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {work / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "bench", "--pin", PIN, "--so-pin", "87654321"], check=True, capture_output=True)
    engine_conf = work / "engine.cnf"
    engine_conf.write_text(
        "openssl_conf = init\n[init]\nengines = eng\n[eng]\npkcs11 = p11\n[p11]\nengine_id = pkcs11\n"
        f"dynamic_path = {ENGINE}\nMODULE_PATH = {SOFTHSM}\ninit = 0\n"
    )
    return dict(os.environ, OPENSSL_CONF=str(engine_conf))


def entry(name: str, value: float, unit: str, peer: str, peer_value: float) -> dict:
    return {"name": name, "value": round(value, 3), "unit": unit, "peer": peer, "peer_value": round(peer_value, 3), "ratio": round(value / peer_value, 3)}


def speedup(e: dict) -> float:
    """Times faster than the peer, whatever the unit."""
    return e["value"] / e["peer_value"] if e["unit"].endswith("/s") else e["peer_value"] / e["value"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (smoke test)")
    args = parser.parse_args()
    n_ours, n_openssl, n_service, n_crl = (100, 20, 20, 10_000) if args.quick else (2000, 200, 300, 100_000)

    with tempfile.TemporaryDirectory(prefix="bench-ca-") as tmp:
        work = Path(tmp)
        piv = piv_auth_cert()
        csrs = make_csrs(max(n_ours, n_openssl), work)
        name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"), x509.NameAttribute(NameOID.COMMON_NAME, "Bench Derived PIV CA")])
        results = []

        # file key
        file_key = ec.generate_private_key(ec.SECP256R1())
        file_ca = IssuingCA(self_signed_ca_certificate(name, PrivateKeySigner(file_key)), PrivateKeySigner(file_key))
        ca_pem, ca_key = work / "ca.pem", work / "ca.key"
        ca_pem.write_bytes(file_ca.certificate.public_bytes(serialization.Encoding.PEM))
        ca_key.write_bytes(file_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        ours = station_rate(file_ca, piv, csrs[:n_ours])
        peer = openssl_rate(csrs[:n_openssl], ca_pem, ["-CAkey", str(ca_key)], work, dict(os.environ))
        results.append(entry("ca.issue.p256.file_key", ours, "certs/s", "openssl x509 -req loop (file key)", peer))

        # SoftHSM key
        env = softhsm_env(work)
        uri = f"pkcs11:token=bench;object=ca?module-path={SOFTHSM}"
        generate_on_token(uri, PIN)
        signer = Pkcs11Signer(uri, PIN)
        hsm_ca = IssuingCA(self_signed_ca_certificate(name, signer), signer)
        hsm_pem = work / "hsm-ca.pem"
        hsm_pem.write_bytes(hsm_ca.certificate.public_bytes(serialization.Encoding.PEM))
        ours_hsm = station_rate(hsm_ca, piv, csrs[:n_ours])
        key_args = ["-engine", "pkcs11", "-CAkeyform", "engine", "-CAkey", f"pkcs11:token=bench;object=ca;type=private;pin-value={PIN}"]
        peer_hsm = openssl_rate(csrs[:n_openssl], hsm_pem, key_args, work, env)
        signer.close()
        results.append(entry("ca.issue.p256.softhsm_key", ours_hsm, "certs/s", "openssl x509 -req loop (SoftHSM via pkcs11 engine)", peer_hsm))

        # whole service path
        pivs = [piv_auth_cert() for _ in range(n_service)]
        ours_service = service_rate(file_ca, pivs, csrs[:n_service], work)
        results.append(
            entry("ca.issue.p256.service_sqlite", ours_service, "certs/s", "openssl x509 -req loop (file key, no records)", peer)
        )

        # CRL
        ours_crl = crl_seconds(file_ca, n_crl)
        peer_crl = openssl_crl_seconds(n_crl, ca_pem, ca_key, work)
        results.append(entry(f"ca.crl.{n_crl}_entries", ours_crl, "s", "openssl ca -gencrl", peer_crl))

    print(f"{'benchmark':<30} {'station':>16} {'peer':>16} {'ratio':>8} {'speed-up':>9}  peer")
    for e in results:
        print(
            f"{e['name']:<30} {e['value']:>9.2f} {e['unit']:<6} {e['peer_value']:>9.2f} {e['unit']:<6} "
            f"{e['ratio']:>8.3f} {speedup(e):>8.1f}x  {e['peer']}"
        )
    print("ratio = station / peer; speed-up = times faster than the peer (> 1: the station is ahead)")
    if not args.quick:
        record(results)
        print(f"merged into {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
