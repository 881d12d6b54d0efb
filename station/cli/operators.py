"""``station operators add|list|disable``: who may work at the station, and how they sign in.

``add`` and ``disable`` are an administrator's: ``--operator ID`` signs in with the first line
of standard input; ``add --password-stdin`` reads the new operator's password from the next."""

from __future__ import annotations

import json
from pathlib import Path

from station.cli import print_table
from station.cli._station_args import add_station_args, open_station, sign_in, stdin_line
from station.service.session import crl_cache, operator_profile


def register(sub) -> None:
    ops = sub.add_parser("operators", help="station operators and their roles")
    ops_sub = ops.add_subparsers(dest="operators_command", metavar="ACTION")
    ops_sub.required = True
    add = ops_sub.add_parser("add", help="enrol an operator (a PIV card, or a password where the configuration allows it)")
    add_station_args(add, signs_in=True)
    add.add_argument("--id", required=True, help="the operator's identity (e.g. e-mail)")
    add.add_argument("--name", required=True, help="display name")
    add.add_argument("--role", required=True, action="append", choices=["registrar", "supervisor", "administrator", "auditor"],
                     help="repeat for several roles; an administrator never issues, an auditor only reads")
    how = add.add_mutually_exclusive_group(required=True)
    how.add_argument("--piv-cert", type=Path, help="the operator's PIV Authentication certificate (PEM or DER)")
    how.add_argument("--password-stdin", action="store_true", help="read the new operator's password (12+ characters) "
                     "from standard input, the line after the acting administrator's secret")
    add.set_defaults(func=cmd_add)
    listing = ops_sub.add_parser("list", help="operators, roles, sign-in method")
    add_station_args(listing)
    listing.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    listing.set_defaults(func=cmd_list)
    disable = ops_sub.add_parser("disable", help="an operator who leaves: history kept, no more sign-in")
    add_station_args(disable, signs_in=True)
    disable.add_argument("--id", required=True, help="the operator to disable")
    disable.set_defaults(func=cmd_disable)


def cmd_add(args) -> int:
    from station.issuance.signin import hash_password, passwords_allowed
    from station.terms import AuthMethod, Role
    from station.service.operators import OperatorError, PasswordsNotAllowed, add_operator, piv_auth_card

    station = open_station(args)
    try:
        signed = sign_in(args, station, Role.ADMINISTRATOR)
        fascn = card_uuid = None
        if args.piv_cert:
            method = AuthMethod.PIV
            try:
                data = args.piv_cert.read_bytes()
            except OSError as exc:
                raise OperatorError(f"cannot read {args.piv_cert}: {exc.strerror}", code=OperatorError.Code.PIV_CERT,
                                    hint="give the operator's PIV Authentication certificate file") from None
            card = piv_auth_card(data, operator_profile(station), cache_dir=crl_cache(station), source=str(args.piv_cert))
            reference, fascn, card_uuid = card.sha256, card.fascn, card.card_uuid
        else:
            if not passwords_allowed(station.config):
                raise PasswordsNotAllowed("the configuration does not allow operator passwords")
            method = AuthMethod.PASSWORD
            reference = hash_password(stdin_line(f"the password of the new operator {args.id!r}"))
        add_operator(station, args.id, display_name=args.name, roles=[Role(r) for r in args.role], auth_method=method,
                     auth_reference=reference, actor=signed.identity, card_fascn=fascn, card_uuid=card_uuid)
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
    from station.terms import Role
    from station.service.operators import disable_operator

    station = open_station(args)
    try:
        disable_operator(station, args.id, actor=sign_in(args, station, Role.ADMINISTRATOR).identity)
    finally:
        station.close()
    print(f"operator {args.id} disabled")
    return 0
