"""``station demo``: the main job as far as it exists, on virtual devices.

Starts a private pcscd with a vpcd reader and reads a fresh demo PIV card. Where the GSA ICAM
test set is at hand (``../shared/icam-test-pki`` or ``--icam DIR``), it then serves that test
PKI on loopback, runs PKI-AUTH on a golden card and on a revoked one, and issues a derived PIV
credential to the golden card's holder: a station home in a temporary folder (demo keyring
file), a registrar and a supervisor, a fresh SoftHSM token, the seven steps, OpenSC's
``pkcs11-tool`` as witness, and the audit trail verified. Without the test set the demo says
what it skipped and exits 2: it did not do its job.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from station.devices.virtual.demo import make_demo_card
from station.devices.virtual.pcscd import IsolatedPcscd
from station.errors import StationError
from station.issuance.interaction import ApprovalDecision
from station.issuance.progress import Progress

DEMO_PIN = "246810"
NEW_PIN, TRANSPORT_PIN = "k9Pz4mQ1", "55667788"  # the applicant's chosen PIN; the token's as delivered
OPERATORS = {"registrar": "registrar passphrase", "supervisor": "supervisor passphrase"}  # identity: password
SOFTHSM_MODULE = "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"
GOLDEN = "46_Golden_FIPS_201-2_PIV"
DEFAULT_ICAM = Path(__file__).resolve().parents[2].parent / "shared" / "icam-test-pki"
VERIFY_CARDS = [GOLDEN, "24_Revoked_Certificates"]


def register(sub) -> None:
    demo = sub.add_parser("demo", help="run the station's job on virtual devices")
    demo.add_argument("--icam", type=Path, default=DEFAULT_ICAM,
                      help=f"GSA ICAM test PKI folder, for PKI-AUTH and issuance (default {DEFAULT_ICAM})")
    demo.set_defaults(func=cmd_demo)


class _DemoPeople:
    """The people at the station, scripted (an Interaction): they type; nothing typed is shown."""

    def request_pin(self, *, pin_kind: str, tries_left: int | None) -> str:
        if pin_kind == "credential":
            print("  (the applicant types the new credential's PIN)")
            return NEW_PIN
        print(f"  (the cardholder types the {pin_kind} PIN; {tries_left} tries left)")
        return DEMO_PIN

    def request_new_pin(self) -> tuple[str, str]:
        print("  (the applicant chooses a PIN at the kiosk and types it twice)")
        return NEW_PIN, NEW_PIN

    def confirm_photo(self, facial_image: bytes | None, subject: str) -> bool:
        return True

    def operator_secret(self, operator: str, purpose: str) -> str:
        print(f"  ({operator} signs in to {purpose})")
        return OPERATORS[operator]

    def approve_request(self, summary: str) -> ApprovalDecision:
        print(f"  (the supervisor approves: {summary})")
        return ApprovalDecision(True, "approved in the demo")

    def progress(self, event: Progress) -> None:
        # a step done shows the request's new state; the work under way, indented below it
        print(f"  [{event.state}] {event.message}" if event.state else f"    ... {event.message}")


class DemoIncomplete(StationError):
    code = "demo.incomplete"
    hint = "pass --icam DIR naming the GSA ICAM test PKI folder (the one holding cards/ and pki/)"


def cmd_demo(args) -> int:
    from station.cli import main

    have_icam = (args.icam / "cards").is_dir()
    with IsolatedPcscd() as pcscd:
        os.environ["PCSCLITE_CSOCK_NAME"] = str(pcscd.socket_path)
        reader = pcscd.reader()
        print(f"Demo: a private pcscd is running; inserting a fresh demo PIV card into '{reader}'.\n")
        link = pcscd.insert(make_demo_card().card)
        try:
            code = main(["card", "read", "--reader", reader])
        finally:
            pcscd.remove(link)
        if code == 0 and have_icam:
            code = _pki_auth_demo(pcscd, args.icam) or _issuance_demo(pcscd, args.icam)
        print("\nDemo: cards removed, pcscd stopped.")
    if code == 0 and not have_icam:
        raise DemoIncomplete(f"PKI-AUTH and issuance were skipped: no GSA ICAM test cards in {args.icam / 'cards'}")
    return code


def _pki_auth_demo(pcscd: IsolatedPcscd, icam: Path) -> int:
    from station.issuance.pkiauth import pki_auth
    from station.validation.trust import TrustProfile
    from station.devices import pcsc
    from station.devices.piv import PivSession
    from station.devices.virtual import load_card_image
    from station.sim.pki_mirror import PkiMirror

    print(f"\nDemo: PKI-AUTH against the GSA ICAM test PKI, served on loopback from {icam}.")
    with PkiMirror(icam) as mirror, tempfile.TemporaryDirectory() as work:
        profile = TrustProfile.load(mirror.write_profile(Path(work) / "icam-test.toml"))
        for name in VERIFY_CARDS:
            link = pcscd.insert(load_card_image(icam / "cards" / name, pin=DEMO_PIN))
            try:
                print(f"\n{name}:")
                conn = pcsc.open_reader(pcscd.reader())
                try:
                    with conn.transaction():
                        verdict = pki_auth(PivSession(conn), profile, _DemoPeople(), mode="crl", cache_dir=work)
                finally:
                    conn.close(reset=True)
                print(f"  {verdict.verdict.upper()}" + (f" ({', '.join(verdict.reasons)})" if verdict.reasons else ""))
                for line in verdict.details[:3]:
                    print(f"    {line}")
                if verdict.identity.subject_dn:
                    print(f"  cardholder {verdict.identity.subject_dn}, FASC-N {verdict.identity.fascn}")
            finally:
                pcscd.remove(link)
    return 0


ADMIN = ("admin", "administrator passphrase")  # the demo station's first administrator and their password


def demo_station(root: Path, trust_profile: Path, roles: dict, passwords: dict[str, str], config: dict | None = None):
    """A station home in ``root`` with its own issuing CA (demo keyring file: never for real
    secrets) and operators who sign in with passwords: the administrator ``ADMIN`` (made by
    init), who signs in and enrols ``roles`` {identity: Role} with ``passwords`` {identity:
    password}. ``config``: more configuration sections."""
    from station.home import StationHome
    from station.issuance.signin import hash_password, sign_in
    from station.terms import AuthMethod, Role
    from station.service.operators import add_operator
    from station.service.setup import InitOptions, initialize
    from station.service.station import Station

    home = StationHome(root)
    admin, admin_password = ADMIN
    initialize(home, InitOptions(trust_profile=trust_profile, demo=True, ca_issuers_url="http://pki.station.test/ca.p7c",
                                 crl_url="http://pki.station.test/ca.crl", admin=admin,
                                 admin_password_hash=hash_password(admin_password), allow_operator_passwords=True))
    with Station.open(home) as station:
        signed = sign_in(station, admin, lambda: admin_password, Role.ADMINISTRATOR)
        for identity, role in roles.items():
            add_operator(station, identity, display_name=identity, roles=[role], auth_method=AuthMethod.PASSWORD,
                         auth_reference=hash_password(passwords[identity]), actor=signed.identity)
        if config:
            home.save_config({**station.config, **config})
    return home


def _issuance_demo(pcscd: IsolatedPcscd, icam: Path) -> int:
    from station.cli import main
    from station.devices.virtual import load_card_image
    from station.terms import Role
    from station.service.station import Station
    from station.sim.pki_mirror import PkiMirror

    print("\nDemo: issuing a derived PIV credential to the golden card's holder, onto a fresh SoftHSM token"
          " (software, so AAL2).")
    with PkiMirror(icam) as mirror, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "tokens").mkdir()
        (work / "softhsm2.conf").write_text(f"directories.tokendir = {work / 'tokens'}\nobjectstore.backend = file\n")
        os.environ["SOFTHSM2_CONF"] = str(work / "softhsm2.conf")
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "demo-token", "--pin", TRANSPORT_PIN,
                        "--so-pin", "12345678"], check=True, capture_output=True, timeout=30)
        target_uri = f"pkcs11:token=demo-token?module-path={SOFTHSM_MODULE}&pin-value={TRANSPORT_PIN}"
        profile_path = mirror.write_profile(work / "icam-test.toml")
        home = demo_station(work / "home", profile_path, {"registrar": Role.REGISTRAR, "supervisor": Role.SUPERVISOR},
                            OPERATORS)
        print(f"  a station home with its own issuing CA (a temporary folder); administrator {ADMIN[0]} (made by init),"
              f" who enrolled the operators {', '.join(OPERATORS)}")
        link = pcscd.insert(load_card_image(icam / "cards" / GOLDEN, pin=DEMO_PIN))
        with Station.open(home) as station:
            try:
                with station.issuance_session(_DemoPeople(), applicant_reader=pcscd.reader(), target=target_uri,
                                              revocation="crl") as session:
                    outcome = session.issue(registrar="registrar", approver="supervisor", aal="AAL2")
            finally:
                pcscd.remove(link)
        if outcome.state != "issued":
            print(f"  {outcome.state.upper()}")
            return 1
        cert = outcome.certificate
        print(f"  ISSUED certificate {outcome.serial} under policy {outcome.policy}"
              f" to {cert.subject.rfc4514_string()}, valid to {cert.not_valid_after_utc:%Y-%m-%d};"
              f" self-test {outcome.selftest.label} ({', '.join(outcome.selftest.checks)})")
        print("\nOpenSC's pkcs11-tool, reading the token on its own:")
        listing = subprocess.run(["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", "demo-token", "--list-objects",
                                  "--type", "cert"], capture_output=True, text=True, timeout=30)
        for line in listing.stdout.splitlines():
            if line.strip():
                print(f"  {line.strip()}")
        print()
        return main(["audit", "verify", "--home", str(home.root)])
