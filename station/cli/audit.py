"""``station audit verify``, ``export --format jsonl``, ``checkpoint`` and ``trust-key``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from station.audit.export import export_jsonl
from station.audit.log import read_anchor
from station.audit.verify import verify_chain
from station.audit.trust import pin_key, pinned_keys
from station.cli._station_args import add_station_args, open_station, sign_in
from station.ca import ca_store


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("audit", help="the tamper-evident audit trail")
    sub = p.add_subparsers(dest="audit_command", metavar="SUBCOMMAND")
    sub.required = True
    verify = sub.add_parser("verify", help="check the hash chain, the signed checkpoints, and the records rows against the chain")
    add_station_args(verify)
    verify.set_defaults(func=run_verify)
    export = sub.add_parser("export", help="write the audit trail")
    add_station_args(export)
    export.add_argument("--format", choices=["jsonl"], default="jsonl", help="jsonl: one event per line")
    export.add_argument("--out", type=Path, help="file to write (default: standard output)")
    export.set_defaults(func=run_export)
    cp = sub.add_parser("checkpoint", help="sign the current chain head now")
    add_station_args(cp)
    cp.set_defaults(func=run_checkpoint)
    trust = sub.add_parser("trust-key", help="trust another station's audit key to sign checkpoints (an administrator signs in)")
    add_station_args(trust, signs_in=True)
    trust.add_argument("fingerprint", help="the key's SHA-256 (16+ hex digits), as `audit verify` names it")
    trust.set_defaults(func=run_trust_key)


def run_verify(args: argparse.Namespace) -> int:
    with open_station(args, signing=False) as station:
        own_key = ca_store.load_audit_public_key(station.home)
        with station.db.transaction() as session:
            report = verify_chain(session, own_key, read_anchor(station.home.audit_anchor), pinned=pinned_keys(station.home))
    if report.ok:
        print(f"audit trail intact: {report.events} events, {report.checkpoints_verified} signed checkpoints "
              f"(last at event {report.last_checkpoint_seq})")
        if report.last_checkpoint_seq < report.events:
            print(f"note: events {report.last_checkpoint_seq + 1}..{report.events} are not yet covered by a signed checkpoint")
        return 0
    first = report.first_bad
    if first is not None:
        print(f"audit trail BROKEN: first bad event {first.seq}: {first.problem}", file=sys.stderr)
        for finding in report.findings:
            if finding is not first:
                print(f"  also: {finding}", file=sys.stderr)
    if report.rows:
        print(f"records DISAGREE with the audit trail in {len(report.rows)} rows (changed behind the station's back; "
              "the station does not act on them: restore them from a backup or the audit export)", file=sys.stderr)
        for line in report.rows:
            print(line, file=sys.stderr)
    return 1


def run_export(args: argparse.Namespace) -> int:
    with open_station(args, signing=False) as station, station.db.transaction() as session:
        if args.out:
            with args.out.open("w", encoding="utf-8") as fh:
                count = export_jsonl(session, fh)
            print(f"wrote {count} events to {args.out}", file=sys.stderr)
        else:
            try:
                export_jsonl(session, sys.stdout)
                sys.stdout.flush()
            except BrokenPipeError:  # `… | head`: the reader has all it wanted
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def run_checkpoint(args: argparse.Namespace) -> int:
    with open_station(args) as station, station.db.transaction() as session:
        cp = station.audit.checkpoint(session)
    print("nothing to sign: the audit trail is empty" if cp is None else f"the chain head at event {cp.seq} is signed")
    return 0


def run_trust_key(args: argparse.Namespace) -> int:
    from station.records.models import Role

    with open_station(args) as station:
        fingerprint = pin_key(station, args.fingerprint, actor=sign_in(args, station, Role.ADMINISTRATOR).identity)
    print(f"audit key {fingerprint} is trusted to sign checkpoints on this station")
    return 0
