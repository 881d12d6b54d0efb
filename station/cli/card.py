"""``station card read``: read the PIV card in a reader (no PIN is spent)."""

from __future__ import annotations

import json
import sys

from station.cli._prompt import ask_secret, require_terminal
from station.devices import pcsc
from station.devices.errors import NotPivCard
from station.errors import StationError
from station.devices.piv.session import PivSession
from station.devices.piv.summary import summarize


def register(sub) -> None:
    card = sub.add_parser("card", help="read and check PIV cards")
    card_sub = card.add_subparsers(dest="card_command", metavar="ACTION")
    card_sub.required = True
    read = card_sub.add_parser("read", help="read the card's identifiers and certificates")
    read.add_argument("--reader", help="reader name (exact or a unique part); default: the first with a card")
    read.add_argument("--json", action="store_true", help="print one JSON object")
    read.set_defaults(func=cmd_read)

    verify = card_sub.add_parser("verify", help="PKI-AUTH of the card in the reader (exit 0 accept, 1 reject, 2 undecided)")
    verify.add_argument("--profile", required=True, help="trust profile (TOML)")
    verify.add_argument("--revocation", choices=["ocsp", "crl", "ocsp-then-crl"], help="override the profile's revocation mode")
    verify.add_argument("--reader", help="reader name (exact or a unique part); default: the first with a card")
    verify.add_argument("--pin-stdin", action="store_true", help="read the PIN from the first line of standard input")
    verify.add_argument("--allow-last-try", action="store_true", help="send the PIN even when only one try is left")
    verify.add_argument("--json", action="store_true", help="print the verdict object")
    verify.add_argument("--include-photo", action="store_true", help="with --json: include the facial image (base64)")
    verify.add_argument("--home", help="station home (CRL cache); default $STATION_HOME or the user data folder")
    verify.set_defaults(func=cmd_verify)


def cmd_read(args) -> int:
    conn = pcsc.open_reader(args.reader)
    try:
        with conn.transaction():
            info = {"reader": conn.reader, "atr": conn.atr.hex().upper(), **summarize(PivSession(conn))}
    finally:
        conn.close()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"Reader:          {info['reader']} ({info['interface']})")
    print(f"FASC-N:          {info['fascn']}")
    print(f"Card UUID:       {info['card_uuid']}")
    print(f"Cardholder UUID: {info['cardholder_uuid']}")
    print(f"Card expires:    {info['expiry']}")
    for cert in info["certificates"]:
        if "error" in cert:
            print(f"Slot {cert['slot']}:         unreadable ({cert['error']})")
        else:
            print(f"Slot {cert['slot']}:         {cert['subject']} (serial {cert['serial']}, until {cert['not_after'][:10]})")
    tries = "blocked" if info["pin_blocked"] else info["pin_retries"]
    print(f"PIN:             {info['pin_policy']} PIN, tries left: {tries}")
    return 0


class CliPinEntry:
    """Asks for the PIN on the terminal without echo, or reads it from standard input."""

    def __init__(self, from_stdin: bool):
        self.from_stdin = from_stdin

    def request_pin(self, *, pin_kind: str, tries_left: int | None) -> str:
        left = "" if tries_left is None else f" ({tries_left} tries left)"
        return ask_secret(f"{pin_kind} PIN", from_stdin=self.from_stdin, note=left)


def cmd_verify(args) -> int:
    from station.issuance.pkiauth import not_piv_verdict, pki_auth
    from station.validation.trust import TrustProfile
    from station.home import StationHome

    def undecided(exc: StationError) -> int:
        if args.json:
            print(json.dumps({"verdict": "error", "reasons": [exc.code], "details": [exc.one_line()]}, indent=2))
        print(f"station: {exc.one_line()}", file=sys.stderr)
        return 2

    try:
        require_terminal("PIN", from_stdin=args.pin_stdin)
        profile = TrustProfile.load(args.profile)
        home = StationHome.locate(args.home)
        home.make_private()
        cache = home.crl_dir
        cache.mkdir(exist_ok=True)
        conn = pcsc.open_reader(args.reader)
    except StationError as exc:
        return undecided(exc)
    try:
        with conn.transaction():
            try:
                session = PivSession(conn)
            except NotPivCard as exc:
                verdict = not_piv_verdict(exc)
            else:
                verdict = pki_auth(session, profile, CliPinEntry(args.pin_stdin), mode=args.revocation,
                                   allow_last_try=args.allow_last_try, cache_dir=cache)
    except StationError as exc:
        return undecided(exc)
    finally:
        conn.close(reset=True)  # no PIN stays verified on the card
    if args.json:
        print(verdict.to_json(include_photo=args.include_photo))
    else:
        print(f"{verdict.verdict.upper()}" + (f" ({', '.join(verdict.reasons)})" if verdict.reasons else ""))
        for line in verdict.details:
            print(f"  {line}")
        ident = verdict.identity
        if ident.subject_dn:
            print(f"  cardholder: {ident.subject_dn}; FASC-N {ident.fascn}; card UUID {ident.card_uuid}")
    return 0 if verdict.accepted else 1
