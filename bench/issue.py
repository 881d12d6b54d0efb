"""One complete issuance to SoftHSM: golden GSA card over pcscd -> issued, self-tested credential.

Side by side in one run: the station's engine (in process, the two operators' argon2id
sign-ins included), the headless ``station issue`` command as a whole process (interpreter
start included), and the same steps done by standard tools: OpenSC reading and signing on the
card (``pkcs15-tool``, ``pkcs11-tool --sign``), ``openssl verify -crl_check``,
``pkcs11-tool --keypairgen``, ``openssl req`` (libp11 engine, key on the token),
``openssl x509 -req``, ``pkcs11-tool --write-object``, ``pkcs11-tool --change-pin`` and
``pkcs11-tool --sign`` for the self-test. Target: the engine at least 3x faster than the tools.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench.fixtures import softhsm_dir
from bench.results import record, table
from station.issuance.interaction import ApprovalDecision
from station.devices.virtual import load_card_image
from station.devices.virtual.pcscd import IsolatedPcscd
from station.sim.pki_mirror import PkiMirror

ICAM = Path(__file__).resolve().parents[1].parent / "shared/icam-test-pki"
GOLDEN = ICAM / "cards/46_Golden_FIPS_201-2_PIV"
SOFTHSM = "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"
OPENSC = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
CARD_PIN, TRANSPORT, NEW_PIN = "246810", "55667788", "k9Pz4mQ1"
SECRETS = {"reg": "registrar passphrase 1", "sup": "supervisor passphrase 2"}
RUNS = 15


class Person:
    def request_pin(self, *, pin_kind, tries_left):
        return NEW_PIN if pin_kind == "credential" else CARD_PIN

    def request_new_pin(self):
        return NEW_PIN, NEW_PIN

    def confirm_photo(self, image, subject):
        return True

    def operator_secret(self, operator, purpose):
        return SECRETS[operator]

    def approve_request(self, summary):
        return ApprovalDecision(True)

    def progress(self, event):
        pass


_TOKENS: list[str] = []


def new_token() -> tuple[str, str]:
    label = f"b-{uuid.uuid4().hex[:8]}"
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", TRANSPORT, "--so-pin", "12345678"],
                   check=True, capture_output=True)
    _TOKENS.append(label)
    return label, f"pkcs11:token={label}?module-path={SOFTHSM}&pin-value={TRANSPORT}"


def untimed(result):
    """Delete the tokens a run made, so that every run meets the same SoftHSM (one token
    plugged in, as at a station) rather than a token directory growing with each run."""
    while _TOKENS:
        subprocess.run(["softhsm2-util", "--delete-token", "--token", _TOKENS.pop()], check=True, capture_output=True)
    return result


def station_home(work: Path, profile_path: Path):
    from station.sim.demo import demo_station
    from station.terms import Role

    return demo_station(work / "home", profile_path, {"reg": Role.REGISTRAR, "sup": Role.SUPERVISOR}, SECRETS,
                        {"issuance": {"max_active_per_applicant": 1000}})


def engine_issue(home, reader: str, open_station=None) -> tuple[float, float]:
    """(seconds, of which operator sign-in). ``open_station``: a station kept open (as the
    desktop application keeps it); without it the station is opened and closed in the run, as
    the headless command does once its interpreter has started. The issuance session (the
    composition root) wires profiles, CRL cache, reader, target and engine, as for the CLI."""
    from station.service.station import Station

    _, uri = new_token()
    start = time.perf_counter()
    station = open_station or Station.open(home)
    signing_in = 0.0
    try:
        with station.issuance_session(Person(), applicant_reader=reader, target=uri, revocation="crl") as session:
            engine = session.engine
            sign_in = engine._sign_in

            def timed_sign_in(*args, **kwargs):  # the operators' argon2id checks, measured apart
                nonlocal signing_in
                t = time.perf_counter()
                try:
                    return sign_in(*args, **kwargs)
                finally:
                    signing_in += time.perf_counter() - t

            engine._sign_in = timed_sign_in
            outcome = session.issue(registrar="reg", approver="sup", aal="AAL2")
    finally:
        if open_station is None:
            station.close()
    assert outcome.state == "issued"
    return time.perf_counter() - start, signing_in


def process_issue(home, reader: str, env: dict) -> float:
    _, uri = new_token()
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "station", "issue", "--home", str(home.root), "--applicant-reader", reader,
                          "--target", uri, "--aal", "2", "--registrar", "reg", "--approver", "sup"],
                         input=f"{SECRETS['reg']}\n{SECRETS['sup']}\n{CARD_PIN}\n{NEW_PIN}\n", env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return time.perf_counter() - start


def tool_setup(work: Path) -> dict[str, Path]:
    """Untimed: the files the tools need (anchor, intermediate, CRL, a CA key and certificate)."""
    from bench.verify import tool_files

    files = tool_files(work)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "bench CA")])
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc)
    ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(key, hashes.SHA256()))
    files["ca"], files["ca_key"], files["ext"] = work / "ca.pem", work / "ca.key", work / "ext.cnf"
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["ca_key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    files["ext"].write_text("keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth,1.3.6.1.5.2.3.4\n"
                            "certificatePolicies=2.16.840.1.101.3.2.1.3.40\nsubjectAltName=URI:urn:uuid:"
                            f"{uuid.uuid4()}\n")
    return files


def tools_issue(env: dict, files: dict[str, Path], work: Path) -> float:
    label, _ = new_token()
    run = lambda *cmd, **kw: subprocess.run(cmd, check=True, capture_output=True, env={**env, **kw.get("extra", {})})  # noqa: E731
    challenge = work / "challenge"
    challenge.write_bytes(os.urandom(32))
    start = time.perf_counter()
    leaf = work / "leaf.pem"
    leaf.write_bytes(run("pkcs15-tool", "--read-certificate", "01").stdout)
    run("pkcs11-tool", "--module", OPENSC, "--login", "--pin", CARD_PIN, "--sign", "--id", "01", "-m", "SHA256-RSA-PKCS",
        "--input-file", str(challenge), "--output-file", str(work / "sig"))
    run("openssl", "x509", "-in", str(leaf), "-pubkey", "-noout", "-out", str(work / "pub.pem"))
    run("openssl", "dgst", "-sha256", "-verify", str(work / "pub.pem"), "-signature", str(work / "sig"), str(challenge))
    run("openssl", "verify", "-crl_check", "-CAfile", str(files["root"]), "-untrusted", str(files["issuer"]),
        "-CRLfile", str(files["crl"]), str(leaf))
    hsm = ["pkcs11-tool", "--module", SOFTHSM, "--token-label", label, "--login"]
    run(*hsm, "--pin", TRANSPORT, "--keypairgen", "--key-type", "EC:prime256v1", "--id", "01", "--label", "k")
    run("openssl", "req", "-new", "-engine", "pkcs11", "-keyform", "engine", "-key",
        f"pkcs11:token={label};object=k;type=private;pin-value={TRANSPORT}", "-subj", "/CN=ICAM Test Card PIV Auth",
        "-out", str(work / "csr.pem"), extra={"PKCS11_MODULE_PATH": SOFTHSM})
    run("openssl", "x509", "-req", "-in", str(work / "csr.pem"), "-CA", str(files["ca"]), "-CAkey", str(files["ca_key"]),
        "-set_serial", "0x" + os.urandom(16).hex(), "-days", "365", "-extfile", str(files["ext"]), "-outform", "DER",
        "-out", str(work / "cert.der"))
    run(*hsm, "--pin", TRANSPORT, "--write-object", str(work / "cert.der"), "--type", "cert", "--id", "01", "--label", "Derived PIV")
    run(*hsm, "--pin", TRANSPORT, "--change-pin", "--new-pin", NEW_PIN)
    # SoftHSM 2.6 has no CKM_ECDSA_SHA256: hash with openssl, sign the digest (as the station does)
    (work / "digest").write_bytes(run("openssl", "dgst", "-sha256", "-binary", str(challenge)).stdout)
    run(*hsm, "--pin", NEW_PIN, "--sign", "--id", "01", "-m", "ECDSA", "--signature-format", "openssl",
        "--input-file", str(work / "digest"), "--output-file", str(work / "sig2"))
    return time.perf_counter() - start


def main() -> None:
    from station.service.station import Station

    work = Path(tempfile.mkdtemp(prefix="bench-issue-"))
    softhsm_dir(work)
    try:
        with IsolatedPcscd() as daemon, PkiMirror(ICAM) as mirror:
            os.environ["PCSCLITE_CSOCK_NAME"] = str(daemon.socket_path)
            profile_path = mirror.write_profile(work / "icam-test.toml")
            home = station_home(work, profile_path)
            files = tool_setup(work)
            link = daemon.insert(load_card_image(GOLDEN, pin=CARD_PIN))
            try:
                kept_open = Station.open(home)
                untimed(engine_issue(home, daemon.reader(), kept_open))  # warm the CRL cache
                untimed(tools_issue(daemon.env, files, work))  # and the page cache for the tools
                warm, cold, tools = [], [], []
                for _ in range(RUNS):  # alternated, so that all three see the same machine
                    warm.append(untimed(engine_issue(home, daemon.reader(), kept_open)))
                    cold.append(untimed(engine_issue(home, daemon.reader())))
                    tools.append(untimed(tools_issue(daemon.env, files, work)))
                kept_open.close()
                steps = lambda runs: [total - signin for total, signin in runs]  # noqa: E731
                warm_s, cold_s = statistics.median(steps(warm)), statistics.median(steps(cold))
                engine_s = statistics.median(total for total, _ in warm)
                tools_s = statistics.median(tools)
                ratios = sorted(tool / step for step, tool in zip(steps(warm), tools))
                process_s = statistics.median(untimed(process_issue(home, daemon.reader(), {**daemon.env})) for _ in range(3))
            finally:
                daemon.remove(link)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [
        ("station engine, seven steps, station kept open (desktop)", f"{warm_s * 1000:.0f}", f"{tools_s / warm_s:.1f}x"),
        ("station engine, seven steps, station opened per issuance", f"{cold_s * 1000:.0f}", f"{tools_s / cold_s:.1f}x"),
        ("station engine with its 2 argon2id operator sign-ins", f"{engine_s * 1000:.0f}", f"{tools_s / engine_s:.1f}x"),
        ("station issue (whole process, interpreter start)", f"{process_s * 1000:.0f}", f"{tools_s / process_s:.1f}x"),
        ("tools: pkcs15-tool, pkcs11-tool x6, openssl x6", f"{tools_s * 1000:.0f}", "1.0x"),
    ]
    print(table(rows, ("one issuance, golden card -> SoftHSM", "median ms", "speed-up vs tools")))
    print(f"\ntarget: tools/engine >= 3 for the same steps (the tools sign in no operator): {tools_s / warm_s:.1f} with the"
          f" station open (pairwise {ratios[0]:.1f} to {ratios[-1]:.1f}), {tools_s / cold_s:.1f} opening it per issuance;"
          f" {tools_s / engine_s:.1f} with the two argon2id sign-ins (RFC 9106 parameters, deliberately slow)")
    peer = "pkcs15-tool + pkcs11-tool + openssl pipeline (same steps)"
    record([
        {"name": "issue.engine_steps", "value": warm_s * 1000, "unit": "ms", "peer": peer, "peer_value": tools_s * 1000, "ratio": warm_s / tools_s},
        {"name": "issue.engine_steps_cold", "value": cold_s * 1000, "unit": "ms", "peer": peer, "peer_value": tools_s * 1000, "ratio": cold_s / tools_s},
        {"name": "issue.engine", "value": engine_s * 1000, "unit": "ms", "peer": peer, "peer_value": tools_s * 1000, "ratio": engine_s / tools_s},
        {"name": "issue.process", "value": process_s * 1000, "unit": "ms", "peer": peer, "peer_value": tools_s * 1000, "ratio": process_s / tools_s},
    ])

if __name__ == "__main__":
    main()
