"""``station issue`` (the seven steps, headless), ``station requests``, ``station selftest``.

``station issue`` reads, one per line on standard input: the registrar's secret, the
approver's secret, the applicant's PIV PIN and the new credential PIN, and last the target
token's transport PIN when the ``--target`` URI names none. With ``--target phone`` there is
no new PIN line (the applicant sets it on the phone): the command prints ``QR: <uri>`` once
the request's enrollment code exists (``--qr-out`` writes the QR code) and waits, until the
code expires, for the phone to enroll, activate and pass its self-test. It prints what it did for a
person, or with ``--json`` one JSON object; a refusal exits 1 naming the rule or reason code
(``error`` in the JSON), other failures exit 2 or 3 (:class:`station.errors.Exit`). Every list
and show command prints a table, or JSON with ``--json``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from station.cli import print_table
from station.cli._interrupt import interruptible
from station.cli._prompt import ask_secret, require_terminal
from station.cli._station_args import add_station_args, open_station
from station.errors import Exit, StationError

JSON_HELP = "print one JSON object instead of text"


class NoCredentialOnDevice(StationError):
    """The self-test's device holds no derived PIV Authentication certificate."""

    code = "selftest.no_certificate"
    hint = "name the token the credential was issued to with --target"


class NotIssuedHere(StationError):
    """The self-test only vouches for credentials in this station's records."""

    code = "selftest.not_issued"
    hint = "test a credential this station issued (station credentials list)"
    exit_code = Exit.REFUSED


def register(sub) -> None:
    issue = sub.add_parser("issue", help="issue a derived PIV credential (all seven steps, headless)")
    add_station_args(issue)
    issue.add_argument("--applicant-reader", required=True, help="reader holding the applicant's PIV card")
    issue.add_argument("--target", required=True, help="the device: pkcs11:token=…?module-path=…&pin-source=file:<transport PIN file> "
                       "(without a PIN in the URI, the transport PIN is the last line of stdin)")
    issue.add_argument("--aal", choices=["2", "3"], required=True, help="authenticator assurance level (SP 800-63B); 3 needs a hardware token")
    issue.add_argument("--registrar", required=True, help="the registrar who opens the request (an operator id)")
    issue.add_argument("--approver", required=True, help="the supervisor who approves it (an operator id, not the registrar)")
    issue.add_argument("--registrar-reader", help="reader with the registrar's own PIV card (then the registrar's secret is its PIN)")
    issue.add_argument("--approver-reader", help="reader with the approver's own PIV card (then the approver's secret is its PIN)")
    issue.add_argument("--photo-confirmed", action="store_true", help="the registrar compared the card's photo with the person (AAL3)")
    issue.add_argument("--replace", action="store_true",
                       help="the target token already holds a derived credential: the new one replaces it (the old is "
                            "revoked when the new key is made)")
    issue.add_argument("--qr-out", type=Path, metavar="FILE.png",
                       help="with --target phone: write the enrollment QR code there (a new code replaces the file)")
    issue.add_argument("--json", action="store_true", help=JSON_HELP)
    issue.set_defaults(func=cmd_issue)

    requests = sub.add_parser("requests", help="open issuance requests: list, resume or cancel")
    req_sub = requests.add_subparsers(dest="requests_command", metavar="ACTION")
    req_sub.required = True
    listing = req_sub.add_parser("list", help="requests and their states")
    add_station_args(listing)
    listing.add_argument("--open", action="store_true", help="only requests that have not ended")
    listing.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    listing.set_defaults(func=cmd_requests_list)
    resume = req_sub.add_parser("resume", help="continue a request from its last committed step, as the registrar "
                                "named by --operator (stdin: their secret, applicant PIV PIN, new credential PIN)")
    add_station_args(resume, signs_in=True)
    resume.add_argument("request_id", type=int, help="the request to continue (station requests list)")
    resume.add_argument("--applicant-reader", help="reader holding the applicant's PIV card, when a step still needs it")
    resume.add_argument("--target", required=True, help="the request's device, as a pkcs11: URI")
    resume.add_argument("--json", action="store_true", help=JSON_HELP)
    resume.set_defaults(func=cmd_requests_resume)
    cancel = req_sub.add_parser("cancel", help="cancel a request (its certificate, if any, is revoked); a supervisor signs in")
    add_station_args(cancel, signs_in=True)
    cancel.add_argument("request_id", type=int, help="the request to cancel")
    cancel.add_argument("--reason", default="cancelled by operator", help="why, for the audit trail")
    cancel.add_argument("--target", help="the request's device, as a pkcs11: URI: the key (and certificate) the request's run "
                        "made there is deleted (transport PIN: from the URI, else the stdin line after the operator's secret)")
    cancel.add_argument("--json", action="store_true", help=JSON_HELP)
    cancel.set_defaults(func=cmd_requests_cancel)

    test = sub.add_parser("selftest", help="re-run the functional test of an installed credential (step 7)")
    add_station_args(test)
    test.add_argument("--target", required=True, help="the device holding the credential, as a pkcs11: URI")
    test.add_argument("--pin-stdin", action="store_true", help="read the credential PIN from standard input")
    test.add_argument("--json", action="store_true", help=JSON_HELP)
    test.set_defaults(func=cmd_selftest)


def _fail(exc: StationError, as_json: bool) -> int:
    from station.cancel import Cancelled
    from station.cli._interrupt import stopped_line

    request_id = getattr(exc, "request_id", None)  # a stopped command names the request it left
    if as_json:
        print(json.dumps({"error": exc.code, "message": str(exc), "hint": exc.hint,
                          **({"request_id": request_id} if request_id is not None else {})}, indent=2))
    print(f"station: {stopped_line(exc) if isinstance(exc, Cancelled) else exc.one_line()}", file=sys.stderr)
    return int(exc.exit_code)


def _show(out: dict, as_json: bool) -> None:
    """``out`` as JSON, or as aligned ``name  value`` lines (a nested object indented under its name)."""
    if as_json:
        print(json.dumps(out, indent=2))
        return
    for key, value in out.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k.replace('_', ' '):<12} {v}")
        else:
            print(f"{key.replace('_', ' '):<14} {', '.join(value) if isinstance(value, list) else value}")


def _outcome_json(outcome, target) -> dict:
    cert = outcome.certificate
    out = {"request_id": outcome.request_id, "state": outcome.state}
    if cert is not None:
        out["credential"] = {
            "serial": outcome.serial,
            "policy_oid": outcome.policy,
            "subject": cert.subject.rfc4514_string(),
            "not_after": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "target": target.describe().identity,
        }
    if outcome.selftest is not None:
        out["selftest"] = outcome.selftest.label
    return out


class PhoneLines:
    """What a phone does, for ``station issue --target phone``: each new code as a line
    ``QR: <dpiv://enroll URI>`` (standard output; standard error with ``--json``, whose standard
    output is one JSON object) and, with ``--qr-out``, as a PNG written whole (a temporary file
    renamed over it); the phone's other steps as lines on standard error."""

    def __init__(self, qr_out: Path | None, as_json: bool):
        self.qr_out, self.as_json = qr_out, as_json

    def __call__(self, event) -> None:
        if event.kind != "code":
            print(f"[phone] {event.detail}", file=sys.stderr, flush=True)
            return
        if self.qr_out is not None:
            from station.enrollment.qr import png

            partial = self.qr_out.with_name(self.qr_out.name + ".partial")
            partial.write_bytes(png(event.uri))
            os.replace(partial, self.qr_out)
        print(f"QR: {event.uri}", file=sys.stderr if self.as_json else sys.stdout, flush=True)


def _drive(args, ui, work, cancel=None) -> int:
    """Open the station and an issuance session (the applicant's card in
    ``args.applicant_reader``, none when no reader is named; the operators' cards in their
    readers; the target; ``cancel``, set by Ctrl-C or SIGTERM), run ``work(session)``, print
    the outcome. Refusals print ``error`` and exit 1."""
    try:
        station = open_station(args)
    except StationError as exc:
        return _fail(exc, args.json)
    operator_readers = {name: reader for name, reader in (
        (getattr(args, "registrar", None), getattr(args, "registrar_reader", None)),
        (getattr(args, "approver", None), getattr(args, "approver_reader", None)),
        (getattr(args, "operator", None), getattr(args, "operator_reader", None))) if reader}
    try:
        # exclusive for the whole request: no other program uses key 9A around PKI-AUTH
        with station.issuance_session(ui, applicant_reader=args.applicant_reader, operator_readers=operator_readers,
                                      target=args.target, cancel=cancel,
                                      phone_events=PhoneLines(getattr(args, "qr_out", None), args.json)) as session:
            outcome = work(session)
            target = session.target
    except StationError as exc:
        return _fail(exc, args.json)
    finally:
        station.close()
    _show(_outcome_json(outcome, target), args.json)
    return Exit.OK if outcome.state == "issued" else Exit.REFUSED


def cmd_issue(args) -> int:
    from station.cli.interaction import StdinInteraction

    ui = StdinInteraction(sys.stdin, registrar=args.registrar, approver=args.approver,
                          photo_confirmed=args.photo_confirmed, progress_to=sys.stderr)

    def work(session):
        return session.issue(registrar=args.registrar, approver=args.approver, aal=f"AAL{args.aal}", replace=args.replace)

    with interruptible() as cancel:  # Ctrl-C, SIGTERM: stop at the next safe point, exit 130
        return _drive(args, ui, work, cancel)


def cmd_requests_list(args) -> int:
    from dataclasses import asdict

    from station.service import requests

    station = open_station(args, signing=False)
    try:
        listing = [asdict(r) for r in requests.listing(station, open_only=args.open)]
    finally:
        station.close()
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    print_table(["ID", "STATE", "AAL", "TARGET", "CREATED", "REGISTRAR"],
                [[r["request_id"], r["state"], r["aal"], r["target_kind"], r["created_at"][:19], r["registrar"]] for r in listing])
    return 0


def cmd_requests_resume(args) -> int:
    """The registrar who resumes (``--operator``) signs in afresh; the steps are theirs."""
    from station.cli.interaction import StdinInteraction
    from station.issuance.signin import SignInRefused

    if not args.operator:
        return _fail(SignInRefused("resuming a request needs a signed-in registrar", code=SignInRefused.Code.NO_OPERATOR,
                                   hint="name yourself with --operator ID and give your secret as the first line of standard input"),
                     args.json)
    ui = StdinInteraction(sys.stdin, registrar=args.operator, progress_to=sys.stderr, order=StdinInteraction.RESUME_ORDER)
    with interruptible() as cancel:
        return _drive(args, ui, lambda session: session.complete(args.request_id, registrar=args.operator), cancel)


class _TransportPin:
    """``requests cancel --target``: the token's transport PIN, when the URI names none, is the
    line of standard input after the operator's secret."""

    @staticmethod
    def transport_pin() -> str:
        from station.cli._station_args import stdin_line

        return stdin_line("the token transport PIN")


def cmd_requests_cancel(args) -> int:
    """With ``--target``, the key the request's run made on the device is deleted as well."""
    from station.cli._station_args import sign_in
    from station.terms import Role

    station = open_station(args)
    try:
        signed = sign_in(args, station, Role.SUPERVISOR)
        with station.issuance_session(_TransportPin(), target=args.target) as session:
            session.cancel(args.request_id, actor=signed.identity, reason=args.reason, target=session.target)
    except StationError as exc:
        return _fail(exc, args.json)
    finally:
        station.close()
    _show({"request_id": args.request_id, "state": "cancelled", **({"key": "deleted"} if args.target else {})}, args.json)
    return 0


def _issued_here(station, cert):
    """The station's record of ``cert``: found by serial, and the very certificate recorded."""
    from station.service import revocation

    serial = format(cert.serial_number, "x")
    try:
        record = revocation.show_credential(station, serial)
    except revocation.RevocationError:
        record = None
    if record is None or record.certificate_pem.encode() != cert.public_bytes(Encoding.PEM):
        raise NotIssuedHere(f"the certificate on the device (serial {serial}) is not one this station issued")
    return record


def cmd_selftest(args) -> int:
    """Step 7 again, judged against the station's records: the policy checked is the one
    recorded at issuance, not the one the device's certificate claims."""
    from station.issuance import selftest

    require_terminal("credential PIN", from_stdin=args.pin_stdin)
    station = open_station(args, signing=False)
    try:
        with station.issuance_session(None, target=args.target) as session:
            target = session.target
            cert = target.locate_credential()
            if cert is None:
                raise NoCredentialOnDevice("the device holds no derived PIV Authentication certificate")
            record = _issued_here(station, cert)
            pin = ask_secret("credential PIN", from_stdin=args.pin_stdin)
            result = selftest.run(target, pin, cert, station.ca.certificate, record.policy)
    except StationError as exc:
        return _fail(exc, args.json)
    finally:
        station.close()
    _show({"serial": record.serial, "selftest": result.label, "checks": result.checks}, args.json)
    return Exit.OK if result.passed else Exit.REFUSED
