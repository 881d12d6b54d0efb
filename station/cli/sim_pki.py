"""``station sim pki-mirror``: serve a GSA-style test PKI on loopback until stopped.

Registered by :mod:`station.cli.sim` through ``register(sim_subparsers)``.
"""

from __future__ import annotations

import signal
import sys
import threading

from station.sim.pki_mirror import PkiMirror


def register(sim_sub) -> None:
    mirror = sim_sub.add_parser(
        "pki-mirror",
        help="serve a GSA-style PKI folder (AIA/SIA/CRL files, OCSP via openssl ocsp) on loopback",
    )
    mirror.add_argument("--from", dest="source", required=True, metavar="DIR",
                        help="PKI folder with pki/{aia,sia,crls} and responder/ (e.g. ../shared/icam-test-pki)")
    mirror.add_argument("--profile-out", required=True, metavar="FILE",
                        help="write the icam-test trust profile pointing at the mirror here")
    mirror.set_defaults(func=run_pki_mirror)


def run_pki_mirror(args) -> int:
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with PkiMirror(args.source) as mirror:
            path = mirror.write_profile(args.profile_out)
            for host, url in sorted(mirror.url_map.items()):
                print(f"{host} -> {url}")
            print(f"trust profile: {path}", flush=True)
            while not stop.wait(timeout=1.0):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("pki-mirror stopped", file=sys.stderr)
    return 0
