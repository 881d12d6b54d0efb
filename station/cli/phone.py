"""``station phone enroll``: the reference phone client (station/phone/client.py), for tests,
demos and anyone writing a phone app."""

from __future__ import annotations

import json
from pathlib import Path

from station.errors import Exit


def register(sub) -> None:
    phone = sub.add_parser("phone", help="the reference phone client (what a phone app does with the station's QR code)")
    phone_sub = phone.add_subparsers(dest="phone_command", metavar="ACTION")
    phone_sub.required = True
    enroll = phone_sub.add_parser("enroll", help="enroll from the station's QR code: pin its TLS certificate, make a key, "
                                  "enroll over EST, store the key under the PIN, activate, self-test")
    source = enroll.add_mutually_exclusive_group(required=True)
    source.add_argument("--qr", type=Path, metavar="FILE.png", help="the QR code as a PNG (decoded with zbarimg)")
    source.add_argument("--payload", metavar="URI", help="the dpiv://enroll URI itself")
    enroll.add_argument("--pin", required=True, help="the PIN the applicant sets on the phone")
    enroll.add_argument("--store", required=True, type=Path, metavar="DIR", help="where the phone keeps its credential")
    enroll.add_argument("--aal3-test-attestation", action="store_true",
                        help="present a TEST Android key attestation (trusted only by test configurations)")
    enroll.add_argument("--json", action="store_true", help="print one JSON object")
    enroll.set_defaults(func=cmd_enroll)


def cmd_enroll(args) -> int:
    from station.enrollment.qr import EnrollmentPayload
    from station.phone.client import enroll, read_qr

    payload = EnrollmentPayload.parse(args.payload if args.payload else read_qr(args.qr))
    result = enroll(payload, pin=args.pin, store=args.store, test_attestation=args.aal3_test_attestation).as_json()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"credential {result['serial']} under policy {result['policy_oid']}: self-test {result['selftest']}")
    return Exit.OK if result["selftest"] == "pass" else Exit.REFUSED
