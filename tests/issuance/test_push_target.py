"""A device that sends its own request when it is ready (a phone), through the real engine:
the wait is recorded, the request arrives from another thread, the deadline and the cancel
token stop the wait and leave the request to resume."""

from __future__ import annotations

import json
import threading
import time

import pytest

from station.cancel import Cancelled
from station.issuance.engine import IssuanceEngine
from station.issuance.signin import hash_password
from station.issuance.targets import RequestNotReceived
from station.service.operators import add_operator
from station.terms import AuthMethod, Role
from tests.issuance.push_target import PushTarget
from tests.issuance.test_engine import SECRETS, Script, audit, card, rows


@pytest.fixture
def station(sqlite_station):
    st = sqlite_station
    st.config["operators"] = {"allow_passwords": True}
    for identity, roles in (("reg", [Role.REGISTRAR]), ("sup", [Role.SUPERVISOR, Role.REGISTRAR])):
        add_operator(st, identity, display_name=identity, roles=roles, auth_method=AuthMethod.PASSWORD,
                     auth_reference=hash_password(SECRETS[identity]), actor="admin")
    return st


def engine(station, icam_profile, crl_cache, *, wait=5.0, cancel=None):
    return IssuanceEngine(station, icam_profile.with_revocation("crl"), Script(), crl_cache=crl_cache,
                          cancel=cancel, request_wait=wait)


def actions(station, request_id) -> list[str]:
    events = [e for e in map(json.loads, audit(station).splitlines()) if e["record"] == "event"]
    return [e["action"] for e in events if e["object_type"] == "request" and str(e["object_id"]) == str(request_id)
            or e["details_json"].get("request_id") == request_id]


def test_the_phone_sends_its_request_and_the_credential_is_issued(station, icam_profile, crl_cache):
    phone = PushTarget(delay=0.3)
    started = time.monotonic()
    outcome = engine(station, icam_profile, crl_cache).issue(card(), registrar="reg", approver="sup", aal="AAL2", target=phone)
    assert outcome.state == "issued" and outcome.selftest.passed
    assert time.monotonic() - started >= 0.3 and phone.waits == 1
    assert outcome.certificate.public_key() == phone.key.public_key()  # the phone's own key, certified
    done = actions(station, outcome.request_id)
    assert done.index("target.awaiting_request") < done.index("credential.issued")
    assert "target.key_planned" not in done and "target.key_generated" not in done
    [(device, target_uri)] = rows(station, "SELECT c.target_device, r.target_uri FROM credentials c JOIN requests r "
                                           "ON r.id = c.request_id WHERE r.id = :id", id=outcome.request_id)
    assert device == "phone:token=test phone;manufacturer=Test;model=Push;serial=P-0001"
    assert target_uri == "phone:test?serial=P-0001"


def test_past_the_deadline_the_request_waits_to_be_resumed(station, icam_profile, crl_cache):
    silent = PushTarget(delay=None)  # never sends
    eng = engine(station, icam_profile, crl_cache, wait=0.3)
    with pytest.raises(RequestNotReceived) as info:
        eng.issue(card(), registrar="reg", approver="sup", aal="AAL2", target=silent)
    assert info.value.code == "target.request_timeout" and info.value.exit_code == 1
    [(request_id, state, target_state)] = rows(station, "SELECT id, state, target_state FROM requests")
    assert state == "authenticated" and json.loads(target_state) == {"awaiting": "request"}
    text = audit(station)
    assert '"rule": "target.request_timeout"' in text and '"credential.issued"' not in text
    # the same phone (by identity) sends it this time: the request is resumed, the wait not recorded again
    outcome = engine(station, icam_profile, crl_cache).complete(request_id, card(), PushTarget(delay=0.1), registrar="reg")
    assert outcome.state == "issued"
    assert actions(station, request_id).count("target.awaiting_request") == 1


def test_cancel_while_waiting_stops_at_once_and_leaves_the_request(station, icam_profile, crl_cache):
    cancel = threading.Event()
    eng = engine(station, icam_profile, crl_cache, wait=30.0, cancel=cancel)
    applicant = card()
    phone = PushTarget(delay=None)
    request_id = eng.open_request(applicant, registrar="reg", aal="AAL2", target=phone)
    eng.approve(request_id, approver="sup")
    pressed = []

    def press_cancel_while_waiting():  # the registrar presses Cancel once the station waits for the phone
        if phone.waiting.wait(30):
            time.sleep(0.05)
            pressed.append(time.monotonic())
            cancel.set()

    threading.Thread(target=press_cancel_while_waiting, daemon=True).start()
    with pytest.raises(Cancelled):
        eng.complete(request_id, applicant, phone, registrar="reg")
    assert pressed and time.monotonic() - pressed[0] < 0.5  # at once, not at the 30 s deadline
    assert eng.state(request_id) == "authenticated" and "target.awaiting_request" in actions(station, request_id)
    eng.cancel(request_id, actor="sup", reason="the applicant left")
    assert eng.state(request_id) == "cancelled" and '"credential.issued"' not in audit(station)
