"""How fast a cancel stops an issuance: from setting the engine's cancel token to the engine
being idle again (``issue()`` has returned with ``Cancelled``), per step.

The golden GSA card over pcscd, a SoftHSM token, the station kept open (as the desktop
application keeps it). One issuance without a cancel gives each step's window in time; then,
for each step, issuances in which another thread (the GUI's Cancel button, the CLI's signal
handler) sets the token at a seeded random moment inside that step's window. The step a run
stopped in is read from the state the request was left in. Target: <= 100 ms for every step
but key generation on the token (a C_GenerateKeyPair under way is not cut short; SoftHSM's
takes ~13 ms, a hardware token's seconds). The request and approval steps include the
operators' argon2id sign-ins (~0.1 s each, RFC 9106 parameters): a cancel abandons a check
under way (it runs on a helper thread). Each run is wired by the composition root,
``station.issuance_session(...)``, as ``station issue`` and the desktop application wire it.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench.issue import CARD_PIN, GOLDEN, ICAM, Person, new_token, station_home, untimed
from bench.fixtures import softhsm_dir
from bench.results import record, table
from station.devices.virtual import load_card_image
from station.devices.virtual.pcscd import IsolatedPcscd
from station.sim.pki_mirror import PkiMirror

SAMPLES = 8  # cancels aimed at each step
TARGET_MS = 100.0
SEED = 157
STEPS = ["request", "approval", "pki-auth", "key-generation", "delivery", "activation", "self-test"]
# the state a cancelled request is left in -> the step that was stopped (None: no request yet)
STOPPED_IN = {None: "request", "requested": "approval", "approved": "pki-auth", "authenticated": "key-generation",
              "key_generated": "delivery", "delivered": "activation", "activated": "self-test"}
_STARTS = {"approved": "pki-auth", "authenticated": "key-generation", "key_generated": "delivery",
           "delivered": "activation", "activated": "self-test"}


class Timeline(Person):
    """The people of bench/issue.py, noting when each step begins."""

    def __init__(self):
        self.begun: dict[str, float] = {}
        self.started = {step: threading.Event() for step in STEPS}

    def mark(self, step: str | None) -> None:
        if step is not None:
            self.begun.setdefault(step, time.perf_counter())
            self.started[step].set()

    def operator_secret(self, operator, purpose):
        self.mark("request" if purpose == "open a request" else "approval" if purpose.startswith("approve") else None)
        return super().operator_secret(operator, purpose)

    def progress(self, *args, **kwargs):  # (state, message) or a typed event with .state
        state = args[0] if args and isinstance(args[0], str) else getattr(args[0] if args else None, "state", kwargs.get("state"))
        self.mark(_STARTS.get(state))


def issue(station, reader: str, person, cancel=None):
    """One issuance onto a fresh token through the composition root (as ``station issue`` and
    the desktop application wire it); returns (outcome or the Cancelled, uri, engine, the moment
    ``issue()`` returned)."""
    from station.cancel import Cancelled

    _, uri = new_token()
    with station.issuance_session(person, cancel=cancel, applicant_reader=reader, target=uri, revocation="crl") as session:
        engine = session.engine
        try:
            result = session.issue(registrar="reg", approver="sup", aal="AAL2")
        except Cancelled as exc:
            result = exc
        idle = time.perf_counter()
    return result, uri, engine, idle


def windows(station, reader) -> tuple[dict[str, tuple[float, float]], float]:
    """Each step's (start, end) in seconds from the start of ``issue()``, from one full run."""
    person = Timeline()
    start = time.perf_counter()
    result, _, _, idle = issue(station, reader, person)
    assert result.state == "issued", result
    begun = [(step, person.begun[step] - start) for step in STEPS]
    ends = [t for _, t in begun[1:]] + [idle - start]
    return {step: (t, end) for (step, t), end in zip(begun, ends)}, idle - start


def cancelled_run(station, reader, step: str, after: float) -> tuple[str | None, float | None]:
    """An issuance whose cancel token another thread sets ``after`` seconds into ``step``:
    (the step it stopped in, milliseconds from the set to idle), or (None, None) when it ended first."""
    from station.cancel import Cancelled

    cancel = threading.Event()
    person = Timeline()
    set_at: list[float] = []

    def press_cancel():
        if person.started[step].wait(60):
            time.sleep(after)
        set_at.append(time.perf_counter())
        cancel.set()

    button = threading.Thread(target=press_cancel, daemon=True)
    button.start()
    result, uri, engine, idle = issue(station, reader, person, cancel)
    button.join()
    if not isinstance(result, Cancelled):
        return None, None
    state = engine.state(result.request_id) if result.request_id is not None else None
    if result.request_id is not None:  # untimed: end it and take the key off the token (`requests cancel --target`)
        with station.issuance_session(person, target=uri) as session:
            try:
                session.cancel(result.request_id, actor="sup", target=session.target)
            except Exception:  # noqa: BLE001 - after activation the token must be reset; it is deleted anyway
                pass
    return STOPPED_IN[state], (idle - set_at[0]) * 1000


def main() -> None:
    from station.service.station import Station

    work = Path(tempfile.mkdtemp(prefix="bench-cancel-"))
    softhsm_dir(work)
    rng = random.Random(SEED)
    latencies: dict[str, list[float]] = {step: [] for step in STEPS}
    try:
        with IsolatedPcscd() as daemon, PkiMirror(ICAM) as mirror:
            os.environ["PCSCLITE_CSOCK_NAME"] = str(daemon.socket_path)
            profile_path = mirror.write_profile(work / "icam-test.toml")
            home = station_home(work, profile_path)
            link = daemon.insert(load_card_image(GOLDEN, pin=CARD_PIN))
            station = Station.open(home)
            try:
                untimed(windows(station, daemon.reader()))  # warm the CRL cache
                spans, whole = untimed(windows(station, daemon.reader()))
                for step in STEPS:
                    begin, end = spans[step]
                    for _ in range(SAMPLES):
                        stopped, ms = untimed(cancelled_run(station, daemon.reader(), step,
                                                            rng.uniform(0.0, 0.9) * (end - begin)))
                        if stopped is not None:
                            latencies[stopped].append(ms)
            finally:
                station.close()
                daemon.remove(link)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows, entries = [], []
    for step in STEPS:
        found = latencies[step]
        if not found:
            rows.append((step, "0", "-", "-", "-"))
            continue
        median, worst = statistics.median(found), max(found)
        exempt = {"key-generation": " (exempt: key generation on the token)"}.get(step, "")
        rows.append((step, str(len(found)), f"{median:.1f}", f"{worst:.1f}", f"{worst / TARGET_MS:.2f}{exempt}"))
        entries.append({"name": f"cancel.{step}", "value": worst, "unit": "ms", "peer": "target (issue 10)",
                        "peer_value": TARGET_MS, "ratio": worst / TARGET_MS})
    print(f"one issuance without a cancel: {whole * 1000:.0f} ms; "
          + ", ".join(f"{step} {(e - b) * 1000:.0f} ms" for step, (b, e) in spans.items()))
    print(table(rows, ("cancel set during", "runs", "median ms to idle", "max ms to idle", f"max / {TARGET_MS:.0f} ms target")))
    record(entries)


if __name__ == "__main__":
    main()
