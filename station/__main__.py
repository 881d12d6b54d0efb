from station.cli import run

raise SystemExit(run())
