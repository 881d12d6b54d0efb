"""``station sim``: simulated devices and services for tests, demos and training.

``station sim card`` presents a virtual PIV card to a vpcd reader of a real pcscd, the way
vsmartcard's ``vicc`` does: it connects to vpcd at HOST:PORT and serves APDUs until stopped;
stopping it removes the card.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from pathlib import Path

from station.devices.connection import Interface
from station.devices.virtual import blank_token, load_card_image
from station.devices.virtual import vpcd
from station.devices.virtual.token import DEFAULT_FIRMWARE, parse_firmware
from station.errors import StationError

# Other modules may add ``station sim`` subcommands (``register(sim_subparsers)``).
SIM_MODULES = ["station.cli.sim_pki"]


def register(sub) -> None:
    sim = sub.add_parser("sim", help="simulated cards, tokens and PKI services")
    sim_sub = sim.add_subparsers(dest="sim_command", metavar="SERVICE")
    sim_sub.required = True
    card = sim_sub.add_parser("card", help="present a virtual PIV card to a vpcd reader until stopped")
    source = card.add_mutually_exclusive_group(required=True)
    source.add_argument("--from", dest="source", metavar="DIR", help="card image folder (GSA ICAM layout)")
    source.add_argument("--blank-token", action="store_true", help="a blank PIV token: default PIN/PUK/management key, no keys")
    source.add_argument("--demo", action="store_true", help="a fresh demo card with its own demo PKI")
    card.add_argument("--pin", default="123456", help="the card's PIN (default 123456; the Global PIN too where the card uses one)")
    card.add_argument("--vpcd", required=True, metavar="HOST:PORT", help="the vpcd reader to connect to (vpcd listens on 35963)")
    card.add_argument("--contactless", action="store_true", help="present the card over a contactless interface (SP 800-73-4 restrictions apply)")
    card.add_argument("--firmware", type=_firmware, metavar="X.Y.Z",
                      help="with --blank-token: the firmware version it reports (default 5.4.3; from 5.7 the default management key is AES-192)")
    card.add_argument("--attestation-root-out", metavar="FILE",
                      help="with --blank-token: write the token's test attestation root certificate (PEM) to FILE")
    card.set_defaults(func=cmd_card)
    for name in SIM_MODULES:
        importlib.import_module(name).register(sim_sub)


class TokenOptionError(StationError):
    code = "sim.token_option"
    hint = "use them with --blank-token"


def _firmware(text: str) -> tuple[int, int, int]:
    try:
        return parse_firmware(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_card(args):
    interface = Interface.CONTACTLESS if args.contactless else Interface.CONTACT
    if not args.blank_token and (args.firmware or args.attestation_root_out):
        raise TokenOptionError("--firmware and --attestation-root-out describe a token")
    if args.blank_token:
        token = blank_token(interface=interface, firmware=args.firmware or DEFAULT_FIRMWARE)
        if args.attestation_root_out:
            Path(args.attestation_root_out).write_bytes(token.attestation_root_pem())
        return token
    if args.demo:
        from station.devices.virtual.demo import make_demo_card

        return make_demo_card(pin=args.pin, interface=interface).card
    return load_card_image(args.source, pin=args.pin, interface=interface)


def cmd_card(args) -> int:
    card = build_card(args)
    host, port = vpcd.parse_hostport(args.vpcd)
    link = vpcd.VpcdLink(card, vpcd.connect(host, port))

    def stop(signum, frame):
        link.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"station: presenting {card.label} ({card.interface.value}) to vpcd at {host}:{port}", file=sys.stderr, flush=True)
    link.serve()
    print("station: card removed", file=sys.stderr)
    return 0
