"""``station gui``: the desktop application (:mod:`station.ui.app`)."""

from __future__ import annotations

import argparse

from station.home import StationHome


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("gui", help="open the station's desktop application (sign-in, issuance, registry, audit)")
    p.add_argument("--home", help="station home folder (default: $STATION_HOME or the user data folder)")
    p.set_defaults(func=run_gui)


def run_gui(args: argparse.Namespace) -> int:
    from station.ui.app import run

    return run(StationHome.locate(args.home))
