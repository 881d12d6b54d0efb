"""``station demo``: the station in its embedded demo world (:mod:`station.sim.demo`).

With a display it opens the station's windows (sign-in with the demo operators' passwords
shown, the registrar's wizard, the supervisor's approval screen, the applicant's kiosk) and a
"demo controls" window that puts the applicant's virtual card in the virtual reader and plugs
the token in and out; the phone is offered beside the token (``--target phone``: alone), and the
wizard's "Simulate phone" plays it. Without a display, or with ``--headless``, scripted people
drive the same windows offscreen through one whole issuance per target (the token's, then the
phone's) and it prints what happened (``--json``: a list, one object per target: target_kind,
request_id, state, serial, policy_oid, selftest). No pcscd is needed:
the reader is in process. The demo needs the GSA ICAM test PKI (``--icam DIR``) for the
applicant's golden test card and its revocation services; without it, it says so and exits 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from station.errors import Exit
from station.sim.demo import ADMIN, DEFAULT_ICAM, OPERATORS, TARGETS, DemoEnvironment


def register(sub) -> None:
    demo = sub.add_parser("demo", help="the station on virtual devices: windows when a display is there, else scripted")
    demo.add_argument("--icam", type=Path, default=DEFAULT_ICAM,
                      help=f"GSA ICAM test PKI folder, for the applicant's card and its PKI (default {DEFAULT_ICAM})")
    demo.add_argument("--headless", action="store_true",
                      help="drive the windows offscreen through one issuance per target even when a display is there")
    demo.add_argument("--json", action="store_true", help="(headless) print the results as a JSON list, nothing else")
    demo.add_argument("--target", choices=TARGETS, default="softhsm",
                      help="the token offered beside the phone: a SoftHSM token (default) or a virtual PIV token in its "
                           "own reader; phone: the phone alone")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from station.ui.app import display_problem

    headless = args.headless or args.json or display_problem() is not None
    say = (lambda text: None) if args.json else (lambda text: print(text, flush=True))
    with DemoEnvironment(args.icam, args.target) as env:
        if not headless:
            print("Demo: the station's windows are open. Sign in as registrar, supervisor or admin (their passwords are "
                  "on the sign-in screen); the demo controls put the applicant's card in and out.")
            from station.ui.demo import run_windows

            return run_windows(env)
        say(f"Demo (no display: scripted people drive the windows offscreen). Operators: "
            f"{', '.join(OPERATORS)} and {ADMIN[0]}; the applicant's golden test card is in a virtual reader.")
        from station.ui.demo import run_headless

        results = run_headless(env, say)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(f"{r['target_kind']}: request {r['request_id']} {r['state']}, serial {r['serial']}, "
                  f"policy {r['policy_oid']}, self-test {r['selftest']}")
    ok = bool(results) and all(r["state"] == "issued" and r["selftest"] == "pass" for r in results)
    if not ok:
        print("station: the demo issuance did not complete. See the lines above for the step that stopped.", file=sys.stderr)
    return int(Exit.OK) if ok else int(Exit.REFUSED)
