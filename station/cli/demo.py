"""``station demo``: the main job as far as it exists, on virtual devices.

Starts a private pcscd with a vpcd reader and reads a fresh demo PIV card. Where the GSA ICAM
test set is at hand (``../shared/icam-test-pki`` or ``--icam DIR``), it then serves that test
PKI on loopback and runs PKI-AUTH on a golden card and on a revoked one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from station.devices.virtual.demo import make_demo_card
from station.devices.virtual.pcscd import IsolatedPcscd

DEMO_PIN = "246810"
DEFAULT_ICAM = Path(__file__).resolve().parents[2].parent / "shared" / "icam-test-pki"
VERIFY_CARDS = ["46_Golden_FIPS_201-2_PIV", "24_Revoked_Certificates"]


def register(sub) -> None:
    demo = sub.add_parser("demo", help="run the station's job on virtual devices")
    demo.add_argument("--icam", type=Path, default=DEFAULT_ICAM, help="GSA ICAM test PKI folder (for PKI-AUTH)")
    demo.set_defaults(func=cmd_demo)


class _DemoPin:
    def request_pin(self, *, pin_kind: str, tries_left: int | None) -> str:
        print(f"  (the cardholder types the {pin_kind} PIN; {tries_left} tries left)")
        return DEMO_PIN


def cmd_demo(args) -> int:
    from station.cli import main

    with IsolatedPcscd() as pcscd:
        os.environ["PCSCLITE_CSOCK_NAME"] = str(pcscd.socket_path)
        reader = pcscd.reader()
        print(f"Demo: a private pcscd is running; inserting a fresh demo PIV card into '{reader}'.\n")
        link = pcscd.insert(make_demo_card().card)
        try:
            code = main(["card", "read", "--reader", reader])
        finally:
            pcscd.remove(link)
        if code == 0 and (args.icam / "cards").is_dir():
            code = _pki_auth_demo(pcscd, args.icam)
        print("\nDemo: cards removed, pcscd stopped.")
        return code


def _pki_auth_demo(pcscd: IsolatedPcscd, icam: Path) -> int:
    from station.crypto.pkiauth import pki_auth
    from station.crypto.trust import TrustProfile
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
                        verdict = pki_auth(PivSession(conn), profile, _DemoPin(), mode="crl", cache_dir=work)
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
