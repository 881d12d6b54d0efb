"""Options shared by the commands that work on a station home (--home, --db, --operator), and
the sign-in of the operator who acts: every command that changes the station names its actor
(``--operator ID``), who signs in afresh with their own PIV card (``--operator-reader NAME``;
PKI-AUTH under the operator trust profile) or their password, the secret being the first line
of standard input, and must hold the role the action needs."""

from __future__ import annotations

import argparse
import getpass

from station.home import StationHome
from station.secret_input import read_line
from station.service.station import Station


def add_station_args(parser: argparse.ArgumentParser, *, signs_in: bool = False) -> None:
    parser.add_argument("--home", help="station home folder (default: $STATION_HOME or the user data folder)")
    parser.add_argument("--db", help="database URL overriding the configuration (sqlite:///… or postgresql://…)")
    if not signs_in:
        parser.add_argument("--operator", help="who is acting, for the audit trail (default: cli:<login name>)")
        return
    parser.add_argument("--operator", metavar="ID", help="the operator who acts; they sign in: the first line of "
                        "standard input is their password, or their card's PIN with --operator-reader")
    parser.add_argument("--operator-reader", metavar="NAME", help="reader holding the acting operator's own PIV card "
                        "(they sign in by PKI-AUTH)")


def open_station(args: argparse.Namespace, *, signing: bool = True) -> Station:
    return Station.open(StationHome.locate(args.home), db_url=args.db, signing=signing)


def actor(args: argparse.Namespace) -> str:
    return args.operator or f"cli:{getpass.getuser()}"


def stdin_line(what: str) -> str:
    """The next line of standard input (without its newline), for ``what``: bounded and UTF-8
    (:func:`station.secret_input.read_line`), and present."""
    from station.cli.interaction import InputExhausted

    line = read_line(what=what)
    if line is None:
        raise InputExhausted(f"standard input has no line for {what}")
    return line


def sign_in(args: argparse.Namespace, station: Station, role):
    """The acting operator (``--operator``) signs in for an action needing ``role``
    (a :class:`station.terms.Role`); returns the SignedIn."""
    from station.issuance import signin
    from station.service.session import operator_sign_in

    if not args.operator:
        raise signin.SignInRefused("this command changes the station and needs a signed-in operator",
                                   code=signin.SignInRefused.Code.NO_OPERATOR,
                                   hint="name yourself with --operator ID and give your secret as the first line of standard input")
    secret = stdin_line(f"the secret of operator {args.operator!r}")
    # the operator's own card: opened exclusively inside a PC/SC transaction, reset afterwards
    return operator_sign_in(station, args.operator, lambda: secret, role, reader=args.operator_reader)
