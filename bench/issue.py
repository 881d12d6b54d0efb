"""One complete issuance: golden GSA card over pcscd -> issued, self-tested credential, onto SoftHSM
and onto a blank PIV token.

Side by side in one run: the station's engine (in process, the two operators' argon2id
sign-ins included), the headless ``station issue`` command as a whole process (interpreter
start included), and the same steps done by standard tools: OpenSC reading and signing on the
card (``pkcs15-tool``, ``pkcs11-tool --sign``), ``openssl verify -crl_check``,
``pkcs11-tool --keypairgen``, ``openssl req`` (libp11 engine, key on the token),
``openssl x509 -req``, ``pkcs11-tool --write-object``, ``pkcs11-tool --change-pin`` and
``pkcs11-tool --sign`` for the self-test. Target: the engine at least 3x faster than the tools.

Onto a PIV token (``piv:reader=``: a fresh ``blank_token()`` per run in the second slot of the
bench's pcscd, inserted and removed untimed), in the same run: the engine (station kept open),
alternated with the same steps done by tools on a fresh token: the same card-side steps, then
``yubico-piv-tool`` (generate in 9A, import-certificate, change-pin, verify-pin +
test-signature), ``openssl req`` through OpenSC's ``opensc-pkcs11.so`` (yubico-piv-tool 2.2.0
cannot ``request-certificate`` with OpenSSL 3) and ``openssl x509 -req``; and, as the station
also does them, ``yubico-piv-tool`` set-chuid, change-puk and set-mgm-key and OpenSC's
``piv-tool`` for the Discovery Object (timed apart: the table gives the tools with and without
them). Beside the times, the APDUs the station sends the token per issuance, counted at the
virtual token, against the fewest its steps need (``PIV_MINIMUM``). Targets: the engine faster
than the tools; at most 1.5x the minimum APDUs.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections import Counter
from pathlib import Path
from typing import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench.fixtures import softhsm_dir
from bench.results import record, table
from station.issuance.interaction import ApprovalDecision
from station.issuance.targets.piv import APPLICATION_PIN_ONLY, FACTORY_PIN, FACTORY_PUK
from station.devices.piv.containers import DiscoveryObject
from station.devices.virtual import blank_token, load_card_image
from station.devices.virtual.pcscd import IsolatedPcscd
from station.sim.pki_mirror import PkiMirror

ICAM = Path(__file__).resolve().parents[1].parent / "shared/icam-test-pki"
GOLDEN = ICAM / "cards/46_Golden_FIPS_201-2_PIV"
SOFTHSM = "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"
OPENSC = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
CARD_PIN, TRANSPORT, NEW_PIN = "246810", "55667788", "k9Pz4mQ1"
SECRETS = {"reg": "registrar passphrase 1", "sup": "supervisor passphrase 2"}
RUNS = 15
PIV_RUNS = 5  # a PIV run (engine + tools) takes ~1.3 s


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


_CLEANUP: list[Callable[[], object]] = []  # what the current run set up, undone by untimed()


def new_token() -> tuple[str, str]:
    label = f"b-{uuid.uuid4().hex[:8]}"
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", TRANSPORT, "--so-pin", "12345678"],
                   check=True, capture_output=True)
    _CLEANUP.append(lambda: subprocess.run(["softhsm2-util", "--delete-token", "--token", label], check=True, capture_output=True))
    return label, f"pkcs11:token={label}?module-path={SOFTHSM}&pin-value={TRANSPORT}"


def softhsm_uri() -> str:
    return new_token()[1]


def untimed(result):
    """Undo what a run set up (its SoftHSM token deleted, its PIV token pulled out), so that
    every run meets the same devices (one token plugged in, as at a station) rather than a token
    directory growing with each run."""
    while _CLEANUP:
        _CLEANUP.pop()()
    return result


INS = {0xA4: "SELECT", 0xFD: "GET VERSION", 0xF8: "GET SERIAL", 0x20: "VERIFY", 0x87: "GENERAL AUTHENTICATE",
       0xFF: "SET MANAGEMENT KEY", 0x47: "GENERATE ASYMMETRIC KEY PAIR", 0xDB: "PUT DATA", 0x24: "CHANGE REFERENCE DATA",
       0xCB: "GET DATA", 0xCA: "GET DATA (ISO 7816, INS CA)", 0xC0: "GET RESPONSE", 0xF7: "GET METADATA", 0xF9: "ATTEST"}
SELECT, GET_VERSION, GET_SERIAL, VERIFY, AUTH, SET_MGMKEY, GENERATE, PUT_DATA, CHANGE = (
    0xA4, 0xFD, 0xF8, 0x20, 0x87, 0xFF, 0x47, 0xDB, 0x24)
# The fewest APDUs an issuance onto the PIV token needs, for the steps the station performs
# (docs/piv-tokens.md), each device step in its own session as the station keeps them (opened
# exclusively, the token reset after it: each begins with SELECT). Counted as needed, since the
# station's issuance does them: the factory management key rotated (SET MANAGEMENT KEY), the
# CHUID and Discovery Object written beside the certificate, the factory PUK replaced. A
# management-key authentication is two GENERAL AUTHENTICATEs (witness, then challenge). The
# token announces extended length and the station uses it: each PUT DATA is one APDU (with
# short APDUs the ~800-byte certificate would go as 4 chained parts, each counted). Not
# counted: the attestation (AAL3 with configured roots only; the bench issues at AAL2).
PIV_MINIMUM = (
    ("identify the token (its serial names its keyring entries)", {SELECT: 1, GET_VERSION: 1, GET_SERIAL: 1}),
    ("generate the key in 9A, the management key rotated", {SELECT: 1, AUTH: 2, SET_MGMKEY: 1, GENERATE: 1}),
    ("sign the certification request", {SELECT: 1, VERIFY: 1, AUTH: 1}),
    ("certificate, CHUID, Discovery Object", {SELECT: 1, AUTH: 2, PUT_DATA: 3}),
    ("the applicant's PIN, the PUK replaced", {SELECT: 1, CHANGE: 2}),
    ("self-test", {SELECT: 1, VERIFY: 1, AUTH: 1}),
)


class TokenSlot:
    """The second slot of the bench's pcscd. ``uri()`` (untimed) puts a fresh blank virtual PIV
    token in it, pulled out again by :func:`untimed`; ``commands`` counts, by instruction, every
    APDU that token received (chained parts and GET RESPONSEs each count), in its ``transmit``,
    where all that pcscd passes on arrives."""

    def __init__(self, daemon: IsolatedPcscd, slot: int = 1):
        self.daemon, self.slot, self.reader = daemon, slot, daemon.reader(slot)
        self.commands: Counter = Counter()

    def uri(self) -> str:
        token, commands = blank_token(), Counter()
        transmit = token.transmit

        def counted(apdu: bytes):
            commands[apdu[1]] += 1
            return transmit(apdu)

        token.transmit = counted
        link = self.daemon.insert(token, self.slot)
        _CLEANUP.append(lambda: self.daemon.remove(link, self.slot))
        self.commands = commands
        return "piv:reader=" + urllib.parse.quote(self.reader, safe="")


def station_home(work: Path, profile_path: Path):
    from station.sim.demo import demo_station
    from station.terms import Role

    return demo_station(work / "home", profile_path, {"reg": Role.REGISTRAR, "sup": Role.SUPERVISOR}, SECRETS,
                        {"issuance": {"max_active_per_applicant": 1000}})


def engine_issue(home, reader: str, open_station=None, target: Callable[[], str] = softhsm_uri) -> tuple[float, float]:
    """(seconds, of which operator sign-in). ``open_station``: a station kept open (as the
    desktop application keeps it); without it the station is opened and closed in the run, as
    the headless command does once its interpreter has started. The issuance session (the
    composition root) wires profiles, CRL cache, reader, target and engine, as for the CLI.
    ``target()`` makes a fresh target (untimed) and names it: a SoftHSM token by default."""
    from station.service.station import Station

    uri = target()
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


def card_tools(run, files: dict[str, Path], work: Path, challenge: Path) -> None:
    """The applicant's card, as the station reads it: OpenSC reads the PIV Authentication
    certificate and signs the challenge with the card's key, OpenSSL checks the signature and the
    certificate's path with revocation."""
    leaf = work / "leaf.pem"
    leaf.write_bytes(run("pkcs15-tool", "--read-certificate", "01").stdout)
    run("pkcs11-tool", "--module", OPENSC, "--login", "--pin", CARD_PIN, "--sign", "--id", "01", "-m", "SHA256-RSA-PKCS",
        "--input-file", str(challenge), "--output-file", str(work / "sig"))
    run("openssl", "x509", "-in", str(leaf), "-pubkey", "-noout", "-out", str(work / "pub.pem"))
    run("openssl", "dgst", "-sha256", "-verify", str(work / "pub.pem"), "-signature", str(work / "sig"), str(challenge))
    run("openssl", "verify", "-crl_check", "-CAfile", str(files["root"]), "-untrusted", str(files["issuer"]),
        "-CRLfile", str(files["crl"]), str(leaf))


def certify(run, files: dict[str, Path], work: Path, key_uri: str, module: dict[str, str]) -> Path:
    """``openssl req`` signed by the key on the token (libp11 engine through ``module``'s
    environment), ``openssl x509 -req`` by the bench CA: the certificate, DER."""
    run("openssl", "req", "-new", "-engine", "pkcs11", "-keyform", "engine", "-key", key_uri, "-subj", "/CN=ICAM Test Card PIV Auth",
        "-out", str(work / "csr.pem"), extra=module)
    run("openssl", "x509", "-req", "-in", str(work / "csr.pem"), "-CA", str(files["ca"]), "-CAkey", str(files["ca_key"]),
        "-set_serial", "0x" + os.urandom(16).hex(), "-days", "365", "-extfile", str(files["ext"]), "-outform", "DER",
        "-out", str(work / "cert.der"))
    return work / "cert.der"


def softhsm_tools():
    """A fresh SoftHSM token (untimed); returns the tools' timed steps on it."""
    label, _ = new_token()

    def steps(run, files: dict[str, Path], work: Path, challenge: Path) -> None:
        hsm = ["pkcs11-tool", "--module", SOFTHSM, "--token-label", label, "--login"]
        run(*hsm, "--pin", TRANSPORT, "--keypairgen", "--key-type", "EC:prime256v1", "--id", "01", "--label", "k")
        cert = certify(run, files, work, f"pkcs11:token={label};object=k;type=private;pin-value={TRANSPORT}",
                       {"PKCS11_MODULE_PATH": SOFTHSM})
        run(*hsm, "--pin", TRANSPORT, "--write-object", str(cert), "--type", "cert", "--id", "01", "--label", "Derived PIV")
        run(*hsm, "--pin", TRANSPORT, "--change-pin", "--new-pin", NEW_PIN)
        # SoftHSM 2.6 has no CKM_ECDSA_SHA256: hash with openssl, sign the digest (as the station does)
        (work / "digest").write_bytes(run("openssl", "dgst", "-sha256", "-binary", str(challenge)).stdout)
        run(*hsm, "--pin", NEW_PIN, "--sign", "--id", "01", "-m", "ECDSA", "--signature-format", "openssl",
            "--input-file", str(work / "digest"), "--output-file", str(work / "sig2"))

    return steps


class PivTools:
    """The tools' steps on a fresh blank PIV token in ``slot`` (calling the object inserts it,
    untimed). ``extra`` gets, per run, the seconds of the steps beyond the brief's tool list that
    the station's issuance also does: CHUID, Discovery Object, PUK and management key."""

    def __init__(self, slot: TokenSlot, work: Path):
        self.slot, self.extra = slot, []
        self.factory_key = work / "piv-factory-key"  # OpenSC's piv-tool reads the management key from a file
        self.factory_key.write_text(":".join(["01:02:03:04:05:06:07:08"] * 3))
        body = b"\x5c\x01\x7e" + DiscoveryObject(pin_usage_policy=APPLICATION_PIN_ONLY).to_bytes()
        self.discovery = ":".join(f"{b:02X}" for b in bytes([0x00, 0xDB, 0x3F, 0xFF, len(body)]) + body)

    def __call__(self):
        self.slot.uri()
        return self.steps

    def steps(self, run, files: dict[str, Path], work: Path, challenge: Path) -> None:
        piv = ["yubico-piv-tool", "-r", self.slot.reader]  # the factory management key (3DES at firmware 5.4.3)
        run(*piv, "-a", "generate", "-s", "9a", "-A", "ECCP256", "--pin-policy=once", "-o", str(work / "piv-pub.pem"))
        # OpenSC sees a key without a certificate only through PIV_9A_KEY: its public key, DER
        run("openssl", "pkey", "-pubin", "-in", str(work / "piv-pub.pem"), "-outform", "DER", "-out", str(work / "piv-pub.der"))
        cert = certify(run, files, work, f"pkcs11:token=PIV_II;object=PIV AUTH key;type=private;pin-value={FACTORY_PIN}",
                       {"PKCS11_MODULE_PATH": OPENSC, "PIV_9A_KEY": str(work / "piv-pub.der")})
        run(*piv, "-a", "import-certificate", "-s", "9a", "-K", "DER", "-i", str(cert))
        extra = time.perf_counter()
        run(*piv, "-a", "set-chuid")
        out = run("piv-tool", "-r", self.slot.reader, "-A", "M:9B:03", "-s", self.discovery,
                  extra={"PIV_EXT_AUTH_KEY": str(self.factory_key)})
        assert b"SW1=0x90, SW2=0x00" in out.stdout, out.stdout  # piv-tool exits 0 whatever the card answers
        extra = time.perf_counter() - extra
        run(*piv, "-a", "change-pin", "-P", FACTORY_PIN, "-N", NEW_PIN)
        start = time.perf_counter()
        run(*piv, "-a", "change-puk", "-P", FACTORY_PUK, "-N", f"{int.from_bytes(os.urandom(4), 'big') % 10**8:08d}")
        run(*piv, "-a", "set-mgm-key", "-n", os.urandom(24).hex())  # 3DES: yubico-piv-tool 2.2.0 sets no AES key
        self.extra.append(extra + time.perf_counter() - start)
        run(*piv, "-P", NEW_PIN, "-a", "verify-pin", "-a", "test-signature", "-s", "9a", "-K", "DER", "-i", str(cert))


def tools_issue(env: dict, files: dict[str, Path], work: Path, token=softhsm_tools) -> float:
    """The same steps by standard tools: the card's (:func:`card_tools`), then the token's
    (``token()`` makes a fresh token, untimed, and returns its steps)."""
    steps = token()
    run = lambda *cmd, **kw: subprocess.run(cmd, check=True, capture_output=True, env={**env, **kw.get("extra", {})})  # noqa: E731
    challenge = work / "challenge"
    challenge.write_bytes(os.urandom(32))
    start = time.perf_counter()
    card_tools(run, files, work, challenge)
    steps(run, files, work, challenge)
    return time.perf_counter() - start


def piv_comparison(home, daemon: IsolatedPcscd, files: dict[str, Path], work: Path, kept_open) -> dict[str, list]:
    """The engine (station kept open) onto a fresh PIV token and the tools on another,
    alternated ``PIV_RUNS`` times; each run's APDUs to its token by instruction."""
    slot = TokenSlot(daemon)
    tools = PivTools(slot, work)
    untimed(engine_issue(home, daemon.reader(), kept_open, slot.uri))  # warm: the PIV target's first use
    untimed(tools_issue(daemon.env, files, work, tools))
    tools.extra.clear()
    runs: dict[str, list] = {"engine": [], "tools": [], "station_apdus": [], "tool_apdus": [], "extra": tools.extra}
    for _ in range(PIV_RUNS):
        runs["engine"].append(untimed(engine_issue(home, daemon.reader(), kept_open, slot.uri)))
        runs["station_apdus"].append(slot.commands)
        runs["tools"].append(untimed(tools_issue(daemon.env, files, work, tools)))
        runs["tool_apdus"].append(slot.commands)
    return runs


def piv_report(runs: dict[str, list]) -> None:
    warm_s = statistics.median(total - signin for total, signin in runs["engine"])
    engine_s = statistics.median(total for total, _ in runs["engine"])
    tools_s = statistics.median(runs["tools"])
    basic_s = statistics.median(total - extra for total, extra in zip(runs["tools"], runs["extra"]))
    rows = [
        ("station engine, seven steps, station kept open (desktop)", f"{warm_s * 1000:.0f}", f"{tools_s / warm_s:.1f}x",
         f"{basic_s / warm_s:.1f}x"),
        ("station engine with its 2 argon2id operator sign-ins", f"{engine_s * 1000:.0f}", f"{tools_s / engine_s:.1f}x",
         f"{basic_s / engine_s:.1f}x"),
        ("tools, the station's work: pkcs15-tool, pkcs11-tool, yubico-piv-tool x7, piv-tool, openssl x6",
         f"{tools_s * 1000:.0f}", "1.0x", ""),
        ("tools without CHUID, Discovery, PUK, management key (yubico-piv-tool x4)", f"{basic_s * 1000:.0f}", "", "1.0x"),
    ]
    print("\n" + table(rows, ("one issuance, golden card -> blank PIV token", "median ms", "vs tools, same work",
                               "vs tools without")))
    print(f"\ntarget: the engine faster than the tools: {tools_s / warm_s:.1f}x (same work), {basic_s / warm_s:.1f}x (without"
          f" the CHUID, Discovery, PUK and management-key steps); {tools_s / engine_s:.1f}x and {basic_s / engine_s:.1f}x with"
          f" the two argon2id sign-ins; median of {PIV_RUNS}")

    minimum = Counter()
    for _, commands in PIV_MINIMUM:
        minimum.update(commands)
    print("\n" + table([(step, ", ".join(f"{INS[ins]} {n}" for ins, n in commands.items()), sum(commands.values()))
                        for step, commands in PIV_MINIMUM] + [("all", "", sum(minimum.values()))],
                       ("minimum per step (one session each)", "APDUs needed", "")))
    median = lambda counts, ins: statistics.median(c[ins] for c in counts)  # noqa: E731
    seen = list(dict.fromkeys([*minimum, *(i for c in runs["station_apdus"] + runs["tool_apdus"] for i in c)]))
    station = [sum(c.values()) for c in runs["station_apdus"]]
    tools = [sum(c.values()) for c in runs["tool_apdus"]]
    rows = [(INS.get(ins, f"INS {ins:02X}"), minimum[ins], f"{median(runs['station_apdus'], ins):g}",
             f"{median(runs['tool_apdus'], ins):g}") for ins in seen]
    rows.append(("all", sum(minimum.values()), f"{statistics.median(station):g}", f"{statistics.median(tools):g}"))
    print("\n" + table(rows, ("APDUs to the PIV token per issuance", "minimum", "station", "tools, same work")))
    apdu_ratio = statistics.median(station) / sum(minimum.values())
    print(f"\ntarget: the station's APDUs <= 1.5x the minimum: {statistics.median(station):g} / {sum(minimum.values())}"
          f" = {apdu_ratio:.2f}x (runs: {min(station)}-{max(station)} APDUs)")
    peer = "card tools + yubico-piv-tool, piv-tool, openssl via opensc-pkcs11 (same work)"
    record([
        {"name": "issue.piv_engine_steps", "value": warm_s * 1000, "unit": "ms", "peer": peer, "peer_value": tools_s * 1000,
         "ratio": warm_s / tools_s},
        {"name": "issue.piv_engine_steps_basic_tools", "value": warm_s * 1000, "unit": "ms",
         "peer": "the same tools without CHUID, Discovery, PUK, management key", "peer_value": basic_s * 1000,
         "ratio": warm_s / basic_s},
        {"name": "issue.piv_engine", "value": engine_s * 1000, "unit": "ms", "peer": peer, "peer_value": tools_s * 1000,
         "ratio": engine_s / tools_s},
        {"name": "issue.piv_apdus", "value": statistics.median(station), "unit": "APDUs",
         "peer": "fewest the station's steps need (bench/issue.py PIV_MINIMUM)", "peer_value": sum(minimum.values()),
         "ratio": apdu_ratio},
    ])


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
                piv = piv_comparison(home, daemon, files, work, kept_open)
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
    piv_report(piv)


if __name__ == "__main__":
    main()
