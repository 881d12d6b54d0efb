"""``station crl publish --out FILE``: sign the next CRL (DER)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cryptography import x509

from station.cli._station_args import actor, add_station_args, open_station
from station.service import revocation


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("crl", help="certificate revocation lists")
    sub = p.add_subparsers(dest="crl_command", metavar="SUBCOMMAND")
    sub.required = True
    pub = sub.add_parser("publish", help="sign and write the next CRL (DER)")
    add_station_args(pub)
    pub.add_argument("--out", required=True, type=Path, help="file to write the DER CRL to")
    pub.set_defaults(func=run_publish)


def run_publish(args: argparse.Namespace) -> int:
    with open_station(args) as station:
        crl = revocation.publish_crl(station, actor=actor(args), out=args.out)
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    print(f"CRL {number}: {len(crl)} revoked, next update {crl.next_update_utc:%Y-%m-%d %H:%M:%SZ}, written to {args.out}")
    return 0
