"""Options shared by the commands that work on a station home (--home, --db, --operator)."""

from __future__ import annotations

import argparse
import getpass

from station.home import StationHome
from station.service.station import Station


def add_station_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", help="station home folder (default: $STATION_HOME or the user data folder)")
    parser.add_argument("--db", help="database URL overriding the configuration (sqlite:///… or postgresql://…)")
    parser.add_argument("--operator", help="who is acting, for the audit trail (default: cli:<login name>)")


def open_station(args: argparse.Namespace, *, signing: bool = True) -> Station:
    return Station.open(StationHome.locate(args.home), db_url=args.db, signing=signing)


def actor(args: argparse.Namespace) -> str:
    return args.operator or f"cli:{getpass.getuser()}"
