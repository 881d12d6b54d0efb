"""``station ca export``: the CA chain for relying parties (PEM), or the certs-only CMS file
(``--format p7c``, DER) to publish at the caIssuers URL of the certificates (RFC 5280 §4.2.2.1)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from station.cli._station_args import add_station_args
from station.ca import ca_store
from station.home import StationHome


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("ca", help="the issuing CA")
    sub = p.add_subparsers(dest="ca_command", metavar="SUBCOMMAND")
    sub.required = True
    export = sub.add_parser("export", help="write the CA certificate and its chain")
    add_station_args(export)
    export.add_argument("--out", required=True, type=Path, help="file to write the CA chain to")
    export.add_argument("--format", choices=["pem", "p7c"], default="pem", help="pem: chain in PEM; p7c: certs-only CMS, DER")
    export.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    home = StationHome.locate(args.home)
    config = home.load_config()
    # the chain is public: read it without unlocking the CA key
    pem = home.path(config["ca"].get("certificate", ca_store.CA_CERT)).read_bytes()
    certs = x509.load_pem_x509_certificates(pem)
    if args.format == "p7c":
        args.out.write_bytes(pkcs7.serialize_certificates(certs, serialization.Encoding.DER))
    else:
        args.out.write_bytes(pem)
    print(f"wrote {len(certs)} certificate(s) to {args.out} ({args.format})")
    return 0
