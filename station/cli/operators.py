"""``station operators add|list|disable``: who may work at the station, and how they sign in."""

from __future__ import annotations

import json
from pathlib import Path

from station.cli import print_table
from station.cli._station_args import actor, add_station_args, open_station
from station.errors import StationError
from station.secret_input import read_line


def register(sub) -> None:
    ops = sub.add_parser("operators", help="station operators and their roles")
    ops_sub = ops.add_subparsers(dest="operators_command", metavar="ACTION")
    ops_sub.required = True
    add = ops_sub.add_parser("add", help="enrol an operator (a PIV card, or a password where the configuration allows it)")
    add_station_args(add)
    add.add_argument("--id", required=True, help="the operator's identity (e.g. e-mail)")
    add.add_argument("--name", required=True, help="display name")
    add.add_argument("--role", required=True, action="append", choices=["registrar", "supervisor", "administrator", "auditor"],
                     help="repeat for several roles; an administrator never issues, an auditor only reads")
    how = add.add_mutually_exclusive_group(required=True)
    how.add_argument("--piv-cert", type=Path, help="the operator's PIV Authentication certificate (PEM or DER)")
    how.add_argument("--password-stdin", action="store_true", help="read a password (12+ characters) from standard input")
    add.set_defaults(func=cmd_add)
    listing = ops_sub.add_parser("list", help="operators, roles, sign-in method")
    add_station_args(listing)
    listing.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    listing.set_defaults(func=cmd_list)
    disable = ops_sub.add_parser("disable", help="an operator who leaves: history kept, no more sign-in")
    add_station_args(disable)
    disable.add_argument("--id", required=True, help="the operator to disable")
    disable.set_defaults(func=cmd_disable)


def _piv_reference(path: Path) -> tuple[str, str | None, str | None]:
    """SHA-256 of the operator's PIV Authentication certificate, and its FASC-N and UUID."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    from station.crypto.piv_objects import cert_identifiers

    data = path.read_bytes()
    try:
        cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    except ValueError:
        raise StationError(f"{path} is not a certificate", code="operator.piv_cert", hint="give the PEM or DER file") from None
    ids = cert_identifiers(cert)
    import uuid

    return (cert.fingerprint(hashes.SHA256()).hex(), ids.fascn.hex().upper() if ids.fascn else None,
            str(uuid.UUID(bytes=ids.uuid)) if ids.uuid else None)


def cmd_add(args) -> int:
    from station.issuance.signin import hash_password, passwords_allowed
    from station.records.models import AuthMethod, Role
    from station.service.operators import add_operator

    station = open_station(args)
    try:
        fascn = card_uuid = None
        if args.piv_cert:
            method = AuthMethod.PIV
            reference, fascn, card_uuid = _piv_reference(args.piv_cert)
        else:
            if not passwords_allowed(station.config):
                raise StationError("the configuration does not allow operator passwords", code="signin.passwords_disabled",
                                   hint="enrol the operator's PIV card (--piv-cert), or set [operators] allow_passwords = true")
            method = AuthMethod.PASSWORD
            reference = hash_password(read_line(what="operator's password") or "")
        add_operator(station, args.id, display_name=args.name, roles=[Role(r) for r in args.role], auth_method=method,
                     auth_reference=reference, actor=actor(args), card_fascn=fascn, card_uuid=card_uuid)
    finally:
        station.close()
    print(f"operator {args.id} enrolled ({', '.join(args.role)}; {method.value})")
    return 0


def cmd_list(args) -> int:
    from station.service.operators import list_operators

    station = open_station(args, signing=False)
    try:
        operators = list_operators(station)
    finally:
        station.close()
    if args.json:
        print(json.dumps(operators, indent=2))
        return 0
    print_table(["ID", "ACTIVE", "AUTH", "ROLES", "NAME"],
                [[op["id"], "yes" if op["active"] else "no", op["auth"], " ".join(op["roles"]), op["name"]] for op in operators])
    return 0


def cmd_disable(args) -> int:
    from station.service.operators import disable_operator

    station = open_station(args)
    try:
        disable_operator(station, args.id, actor=actor(args))
    finally:
        station.close()
    print(f"operator {args.id} disabled")
    return 0
