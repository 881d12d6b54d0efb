"""``python -m tests.support.failpoint --pause-after STATE <station args>``: the ``station``
command, with its standard-input interaction replaced by one that stops for good right after
the step that commits ``STATE`` (its progress line written, then ``failpoint: paused after
STATE`` on standard error) until the test kills the process. For the crash tests only: the
shipped :class:`~station.cli.interaction.StdinInteraction` has no such hook."""

from __future__ import annotations

import argparse
import sys
import threading

from station.cli import interaction
from station.issuance.progress import Progress

MARK = "failpoint: paused after"


def pausing(shipped: type, state: str) -> type:
    class PausingInteraction(shipped):
        def progress(self, event: Progress) -> None:
            super().progress(event)
            if event.state == state:  # the step's transition is committed: stop here until killed
                print(f"{MARK} {state}", file=sys.stderr, flush=True)
                threading.Event().wait()

    return PausingInteraction


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.failpoint")
    parser.add_argument("--pause-after", required=True, metavar="STATE", help="the request state after whose commit to stop")
    parser.add_argument("station_args", nargs=argparse.REMAINDER, help="the arguments of the station command")
    args = parser.parse_args(argv)
    # before the command's module is imported (main imports it), so that it binds the subclass
    interaction.StdinInteraction = pausing(interaction.StdinInteraction, args.pause_after)
    from station.cli import main as station_main

    return station_main(args.station_args)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
