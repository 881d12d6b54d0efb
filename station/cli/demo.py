"""``station demo``: the main job as far as it exists, on virtual devices.

Starts a private pcscd with a vpcd reader, inserts a fresh demo PIV card, reads it the way
``station card read`` does, and removes the card.
"""

from __future__ import annotations

import os

from station.devices.virtual.demo import make_demo_card
from station.devices.virtual.pcscd import IsolatedPcscd


def register(sub) -> None:
    demo = sub.add_parser("demo", help="run the station's job on virtual devices")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from station.cli import main

    with IsolatedPcscd() as pcscd:
        os.environ["PCSCLITE_CSOCK_NAME"] = str(pcscd.socket_path)
        demo = make_demo_card()
        print(f"Demo: a private pcscd is running; inserting a demo PIV card into '{pcscd.reader()}'.\n")
        link = pcscd.insert(demo.card)
        try:
            code = main(["card", "read", "--reader", pcscd.reader()])
        finally:
            pcscd.remove(link)
        print("\nDemo: card removed, pcscd stopped.")
        return code
