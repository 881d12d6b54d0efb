"""``station credentials list|show|revoke``."""

from __future__ import annotations

import argparse
import json

from station.cli import print_table
from station.cli._station_args import add_station_args, open_station, sign_in
from station.service import revocation


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("credentials", help="issued derived PIV credentials")
    sub = p.add_subparsers(dest="credentials_command", metavar="SUBCOMMAND")
    sub.required = True
    ls = sub.add_parser("list", help="list issued credentials")
    add_station_args(ls)
    ls.add_argument("--status", choices=["active", "revoked"], help="only credentials with this status")
    ls.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    ls.set_defaults(func=run_list)
    show = sub.add_parser("show", help="show one credential")
    add_station_args(show)
    show.add_argument("serial", help="serial number (hex)")
    show.add_argument("--pem", action="store_true", help="print the certificate too")
    show.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    show.set_defaults(func=run_show)
    rv = sub.add_parser("revoke", help="revoke a credential (it appears on the next CRL); an administrator signs in")
    add_station_args(rv, signs_in=True)
    rv.add_argument("serial", help="serial number (hex)")
    rv.add_argument("--reason", required=True, help="RFC 5280 reason, e.g. keyCompromise, affiliationChanged, superseded")
    rv.set_defaults(func=run_revoke)


def _json(c, *, pem: bool = False) -> dict:
    """A credential as ``--json`` prints it (README: credentials list|show)."""
    out = {"serial": c.serial, "status": c.status, "request_id": c.request_id, "policy_oid": c.policy,
           "not_after": f"{c.not_after:%Y-%m-%dT%H:%M:%SZ}", "subject": c.subject,
           "issued_at": f"{c.issued_at:%Y-%m-%dT%H:%M:%SZ}", "target_device": c.target_device,
           "revocation_reason": c.revocation_reason,
           "revoked_at": f"{c.revoked_at:%Y-%m-%dT%H:%M:%SZ}" if c.revoked_at else None}
    return out | ({"certificate_pem": c.certificate_pem} if pem else {})


def run_list(args: argparse.Namespace) -> int:
    with open_station(args, signing=False) as station:
        rows = revocation.list_credentials(station, status=args.status)
    if args.json:
        print(json.dumps([_json(c) for c in rows], indent=2))
        return 0
    print_table(["SERIAL", "STATUS", "NOT AFTER", "SUBJECT"], [[c.serial, c.status, f"{c.not_after:%Y-%m-%d}", c.subject] for c in rows])
    return 0


def run_show(args: argparse.Namespace) -> int:
    with open_station(args, signing=False) as station:
        c = revocation.show_credential(station, args.serial)
    if args.json:
        print(json.dumps(_json(c, pem=args.pem), indent=2))
        return 0
    print(f"serial:      {c.serial}")
    print(f"subject:     {c.subject}")
    print(f"policy:      {c.policy}")
    print(f"status:      {c.status}" + (f" ({c.revocation_reason}, {c.revoked_at:%Y-%m-%d %H:%M:%SZ})" if c.revoked_at else ""))
    print(f"issued:      {c.issued_at:%Y-%m-%d %H:%M:%SZ} (request {c.request_id})")
    print(f"not after:   {c.not_after:%Y-%m-%d %H:%M:%SZ}")
    print(f"device:      {c.target_device or '-'}")
    if args.pem:
        print(c.certificate_pem, end="")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    from station.terms import Role

    with open_station(args) as station:
        c = revocation.revoke(station, args.serial, args.reason, actor=sign_in(args, station, Role.ADMINISTRATOR).identity)
    print(f"revoked {c.serial} ({c.revocation_reason}); publish a CRL: station crl publish --out FILE")
    return 0
