"""Stateful property: random sequences of operator actions never reach "issued" without an
approval by someone other than the registrar followed by an accepted PKI-AUTH."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import select

from station.devices.piv import PivSession
from station.devices.virtual import VirtualConnection, load_card_image
from station.errors import StationError
from station.issuance.engine import IssuanceEngine
from station.issuance.signin import hash_password
from station.issuance.targets import open_target
from station.records.models import AuditEvent, IssuanceRequest
from station.terms import AuthMethod, Role
from station.service.operators import add_operator
from tests.issuance.test_engine import SECRETS, Script
from tests.conftest import CARDS, GOLDEN, TEST_PIN, init_softhsm_token

CARDS_FOR = {"golden": GOLDEN, "revoked": CARDS / "24_Revoked_Certificates"}


def test_never_issued_without_approval_and_pki_auth(sqlite_station, icam_profile, crl_cache, softhsm_conf):
    station = sqlite_station
    station.config["operators"] = {"allow_passwords": True}
    SECRETS.setdefault("both", "both roles passphrase 3")
    for identity, roles in (("reg", [Role.REGISTRAR]), ("sup", [Role.SUPERVISOR]), ("both", [Role.REGISTRAR, Role.SUPERVISOR])):
        add_operator(station, identity, display_name=identity, roles=roles, auth_method=AuthMethod.PASSWORD,
                     auth_reference=hash_password(SECRETS[identity]), actor="admin")
    engine = IssuanceEngine(station, icam_profile.with_revocation("crl"), Script(), crl_cache=crl_cache,
                            max_active_per_applicant=1000)

    # one credential issued the proper way, so the invariant below is never vacuous
    happy = open_target(init_softhsm_token(f"p-{uuid.uuid4().hex[:8]}", "55667788"))
    golden = PivSession(VirtualConnection(load_card_image(GOLDEN, pin=TEST_PIN)))
    first = engine.open_request(golden, registrar="reg", aal="AAL2", target=happy)
    engine.approve(first, approver="sup")
    assert engine.complete(first, golden, happy, registrar="reg").state == "issued"

    class Operators(RuleBasedStateMachine):
        requests = Bundle("requests")

        def __init__(self):
            super().__init__()
            self.targets = {}

        def card(self, which):
            return PivSession(VirtualConnection(load_card_image(CARDS_FOR[which], pin=TEST_PIN)))

        def attempt(self, action):
            try:
                action()
            except StationError:
                pass  # refusals are the point; every one of them is typed

        @rule(target=requests, registrar=st.sampled_from(["reg", "both", "sup"]), which=st.sampled_from(["golden", "revoked"]))
        def open(self, registrar, which):
            target = open_target(init_softhsm_token(f"p-{uuid.uuid4().hex[:8]}", "55667788"))
            try:
                request_id = engine.open_request(self.card(which), registrar=registrar, aal="AAL2", target=target)
            except StationError:
                return None
            self.targets[request_id] = target
            return request_id

        @rule(request_id=requests, approver=st.sampled_from(["reg", "both", "sup"]))
        def approve(self, request_id, approver):
            if request_id is not None:
                self.attempt(lambda: engine.approve(request_id, approver=approver))

        @rule(request_id=requests, which=st.sampled_from(["golden", "revoked"]))
        def authenticate(self, request_id, which):
            if request_id is not None:
                self.attempt(lambda: engine.authenticate_applicant(request_id, self.card(which), registrar="reg"))

        @rule(request_id=requests, step=st.sampled_from(["generate", "deliver", "activate", "verify"]))
        def later_step(self, request_id, step):
            if request_id is not None:
                self.attempt(lambda: getattr(engine, step)(request_id, self.targets[request_id], registrar="reg"))

        @rule(request_id=requests, which=st.sampled_from(["golden", "revoked"]))
        def complete(self, request_id, which):
            """An operator drives the request through every remaining step at once."""
            if request_id is not None:
                self.attempt(lambda: engine.complete(request_id, self.card(which), self.targets[request_id], registrar="reg"))

        @rule(request_id=requests)
        def cancel(self, request_id):
            if request_id is not None:
                self.attempt(lambda: engine.cancel(request_id, actor="sup"))

        @invariant()
        def issued_only_after_approval_and_pki_auth(self):
            with station.db.transaction() as session:
                for req in session.execute(select(IssuanceRequest).where(IssuanceRequest.state == "issued")).scalars():
                    assert req.approver_id is not None and req.approver_id != req.registrar_id
                    events = session.execute(select(AuditEvent.action, AuditEvent.seq).where(
                        AuditEvent.object_type == "request", AuditEvent.object_id == str(req.id))).all()
                    seqs = {action: seq for action, seq in events}
                    assert seqs["request.approved"] < seqs["request.applicant_authenticated"] < seqs["request.issued"]
                    assert req.credential is not None and req.credential.status == "active"

    run_state_machine_as_test(Operators, settings=settings(max_examples=10, stateful_step_count=10, deadline=None, derandomize=True,
                                                          suppress_health_check=list(HealthCheck)))
    with station.db.transaction() as session:  # the random operators reached several states
        states = set(session.execute(select(IssuanceRequest.state)).scalars())
    assert "issued" in states and len(states) > 2, states
