"""``station issue`` (the seven steps, headless), ``station requests``, ``station selftest``.

``station issue`` reads, one per line on standard input: the registrar's secret, the
approver's secret, the applicant's PIV PIN and the new credential PIN. It prints one JSON
object; any refusal exits non-zero with ``error`` naming the rule or reason code.
"""

from __future__ import annotations

import getpass
import json
import sys

from cryptography import x509

from station.cli._station_args import add_station_args, open_station, operator_profile
from station.errors import StationError


def register(sub) -> None:
    issue = sub.add_parser("issue", help="issue a derived PIV credential (all seven steps, headless)")
    add_station_args(issue)
    issue.add_argument("--applicant-reader", required=True, help="reader holding the applicant's PIV card")
    issue.add_argument("--target", required=True, help="the device: pkcs11:token=…?module-path=…&pin-value=<transport PIN>")
    issue.add_argument("--aal", choices=["2", "3"], required=True)
    issue.add_argument("--registrar", required=True)
    issue.add_argument("--approver", required=True)
    issue.add_argument("--registrar-reader", help="reader with the registrar's own PIV card (then the registrar's secret is its PIN)")
    issue.add_argument("--approver-reader", help="reader with the approver's own PIV card (then the approver's secret is its PIN)")
    issue.add_argument("--photo-confirmed", action="store_true", help="the registrar compared the card's photo with the person (AAL3)")
    issue.add_argument("--json", action="store_true", help="print one JSON object (the default output)")
    issue.set_defaults(func=cmd_issue)

    requests = sub.add_parser("requests", help="open issuance requests: list, resume or cancel")
    req_sub = requests.add_subparsers(dest="requests_command", metavar="ACTION")
    req_sub.required = True
    listing = req_sub.add_parser("list", help="requests and their states")
    add_station_args(listing)
    listing.add_argument("--open", action="store_true", help="only requests that have not ended")
    listing.set_defaults(func=cmd_requests_list)
    resume = req_sub.add_parser("resume", help="continue a request from its last committed step; a registrar signs in "
                                "(stdin: registrar's secret, applicant PIV PIN, new credential PIN)")
    add_station_args(resume, signs_in=True)
    resume.add_argument("request_id", type=int)
    resume.add_argument("--applicant-reader")
    resume.add_argument("--target", required=True)
    resume.set_defaults(func=cmd_requests_resume)
    cancel = req_sub.add_parser("cancel", help="cancel a request (its certificate, if any, is revoked); a supervisor signs in")
    add_station_args(cancel, signs_in=True)
    cancel.add_argument("request_id", type=int)
    cancel.add_argument("--reason", default="cancelled by operator")
    cancel.set_defaults(func=cmd_requests_cancel)

    test = sub.add_parser("selftest", help="re-run the functional test of an installed credential (step 7)")
    add_station_args(test)
    test.add_argument("--target", required=True)
    test.add_argument("--pin-stdin", action="store_true", help="read the credential PIN from standard input")
    test.set_defaults(func=cmd_selftest)


def _fail(exc: StationError) -> int:
    print(json.dumps({"error": exc.code, "message": str(exc), "hint": exc.hint}, indent=2))
    print(f"station: {exc.one_line()}", file=sys.stderr)
    return getattr(exc, "exit_code", 1)  # a refused sign-in: 3


def _engine(station, ui, operator_card=None):
    from station.crypto.trust import TrustProfile
    from station.issuance.engine import IssuanceEngine

    cache = station.home.crl_dir
    cache.mkdir(parents=True, exist_ok=True)
    applicants = TrustProfile.load(station.config["trust_profile"])
    return IssuanceEngine(station, applicants, ui, crl_cache=cache, operator_profile=operator_profile(station),
                          operator_card=operator_card)


def _target(station, uri: str):
    from station.issuance.targets import open_target

    hardware = set((station.config.get("targets") or {}).get("hardware_modules", []))
    return open_target(uri, hardware_modules=hardware)


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


def _drive(args, ui, work) -> int:
    """Open the station, run ``work(engine, target, card)`` with the card in
    ``args.applicant_reader`` (None when no reader is named; the card is reset afterwards),
    print the outcome. Refusals print ``error`` and exit 1."""
    from station.devices import pcsc
    from station.devices.piv import PivSession

    try:
        station = open_station(args)
    except StationError as exc:
        return _fail(exc)
    operator_readers = {name: reader for name, reader in (
        (getattr(args, "registrar", None), getattr(args, "registrar_reader", None)),
        (getattr(args, "approver", None), getattr(args, "approver_reader", None)),
        (getattr(args, "operator", None), getattr(args, "operator_reader", None))) if reader}
    connections = []

    def operator_card(identity: str):
        if identity not in operator_readers:
            return None
        conn = pcsc.open_reader(operator_readers[identity])
        connections.append(conn)
        return PivSession(conn)

    try:
        engine, target = _engine(station, ui, operator_card), _target(station, args.target)
        conn = pcsc.open_reader(args.applicant_reader) if args.applicant_reader else None
        try:
            outcome = work(engine, target, PivSession(conn) if conn else None)
        finally:
            target.close()
            for c in [conn, *connections]:
                if c:
                    c.close(reset=True)
    except StationError as exc:
        return _fail(exc)
    finally:
        station.close()
    print(json.dumps(_outcome_json(outcome, target), indent=2))
    return 0 if outcome.state == "issued" else 1


def cmd_issue(args) -> int:
    from station.issuance.interaction import StdinInteraction

    ui = StdinInteraction(sys.stdin, registrar=args.registrar, approver=args.approver,
                          photo_confirmed=args.photo_confirmed, progress_to=sys.stderr)

    def work(engine, target, card):
        return engine.issue(card, registrar=args.registrar, approver=args.approver, aal=f"AAL{args.aal}", target=target)

    return _drive(args, ui, work)


def cmd_requests_list(args) -> int:
    from sqlalchemy import select

    from station.issuance.engine import FINAL
    from station.records.models import IssuanceRequest

    station = open_station(args, signing=False)
    try:
        with station.db.transaction() as session:
            rows = session.execute(select(IssuanceRequest).order_by(IssuanceRequest.id)).scalars().all()
            listing = [{"request_id": r.id, "state": r.state, "aal": r.aal, "target_kind": r.target_kind,
                        "registrar": r.registrar.identity, "created_at": r.created_at.isoformat()}
                       for r in rows if not (args.open and r.state in {s.value for s in FINAL})]
    finally:
        station.close()
    print(json.dumps(listing, indent=2))
    return 0


def cmd_requests_resume(args) -> int:
    """The registrar who resumes (``--operator``) signs in afresh; the steps are theirs."""
    from station.issuance.interaction import StdinInteraction
    from station.issuance.signin import SignInRefused

    if not args.operator:
        return _fail(SignInRefused("resuming a request needs a signed-in registrar", code="signin.no_operator",
                                   hint="name yourself with --operator ID and give your secret as the first line of standard input"))
    ui = StdinInteraction(sys.stdin, registrar=args.operator, progress_to=sys.stderr, order=StdinInteraction.RESUME_ORDER)
    return _drive(args, ui, lambda engine, target, card: engine.complete(args.request_id, card, target, registrar=args.operator))


def cmd_requests_cancel(args) -> int:
    from station.cli._station_args import sign_in
    from station.records.models import Role

    station = open_station(args)
    try:
        signed = sign_in(args, station, Role.SUPERVISOR)
        engine = _engine(station, None)
        engine.cancel(args.request_id, actor=signed.identity, reason=args.reason)
    except StationError as exc:
        return _fail(exc)
    finally:
        station.close()
    print(json.dumps({"request_id": args.request_id, "state": "cancelled"}))
    return 0


def cmd_selftest(args) -> int:
    from station.issuance import selftest

    station = open_station(args, signing=False)
    try:
        target = _target(station, args.target)
        cert = target.locate_credential()
        if cert is None:
            raise StationError("the device holds no derived PIV Authentication certificate", code="selftest.no_certificate")
        pin = sys.stdin.readline().rstrip("\r\n") if args.pin_stdin else getpass.getpass("Credential PIN: ")
        policy = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value[0].policy_identifier.dotted_string
        result = selftest.run(target, pin, cert, station.ca.certificate, policy)
    except StationError as exc:
        return _fail(exc)
    finally:
        station.close()
    print(json.dumps({"selftest": result.label, "checks": result.checks}, indent=2))
    return 0 if result.passed else 1
