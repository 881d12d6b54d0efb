"""``station card read``: read the PIV card in a reader (no PIN is spent)."""

from __future__ import annotations

import json

from station.devices import pcsc
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
