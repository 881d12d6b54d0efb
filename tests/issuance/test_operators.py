"""`station operators`: roles with separation of duties, PIV or password sign-in, disable; an
operator's card identity keeps them from serving themself. Every command that changes the
station signs its actor in (their secret first on standard input) and checks their role."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from station.home import StationHome
from station.issuance.engine import IssuanceRefused
from station.issuance.signin import SignInRefused, hash_password, sign_in_with_password
from station.issuance.targets import open_target
from station.terms import AuthMethod, Role
from station.service.operators import OperatorError, add_operator
from station.service.station import Station
from tests.conftest import CARDS, GOLDEN, init_softhsm_token
from tests.issuance.test_engine import card, engine
from tests.issuance.test_issue_cli import SECRETS, home  # noqa: F401  (the fixture)

STATION = [sys.executable, "-m", "station"]
CARD_AUTH = GOLDEN / "6 - ICAM_PIV_Card_Auth_SP_800-73-4.crt"
PIV_AUTH = GOLDEN / "3 - ICAM_PIV_Auth_SP_800-73-4.crt"
OPERATOR_CARD = CARDS / "01_Golden_PIV"  # an administrator's own PIV card (PIN below)
OPERATOR_PIN = "135790"
REFUSED = 1  # exit code of a refused sign-in or a missing role (Exit.REFUSED)


def station_cli(home, *args, operator="adm", secret=None, stdin="", env=None):  # noqa: F811
    """``station ARGS --home H --operator OPERATOR``, the operator's secret first on stdin."""
    who = ["--operator", operator] if operator else []
    first = SECRETS.get(operator, "") if secret is None else secret
    return subprocess.run([*STATION, *args, "--home", str(home), *who], input=f"{first}\n{stdin}" if first else stdin,
                          capture_output=True, text=True, timeout=60, env=env)


def ops(home, *args, **kw):  # noqa: F811
    return station_cli(home, "operators", *args, **kw)


def listed(home) -> dict:  # noqa: F811
    return {o["id"]: o for o in json.loads(ops(home, "list", "--json", operator=None).stdout)}


def audit_events(home) -> list[dict]:  # noqa: F811
    out = station_cli(home, "audit", "export", "--format", "jsonl", operator=None).stdout
    records = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [{**r, "details": r["details_json"]} for r in records if r["record"] == "event"]


def test_enrol_list_disable(home):  # noqa: F811
    assert ops(home, "add", "--id", "carol", "--name", "Carol", "--role", "registrar", "--password-stdin",
               stdin="carol passphrase 9\n").returncode == 0
    carol = listed(home)["carol"]
    assert carol["roles"] == ["registrar"] and carol["auth"] == "password"
    assert ops(home, "disable", "--id", "carol").returncode == 0
    assert not listed(home)["carol"]["active"]
    station = Station.open(StationHome(home))
    try:
        with pytest.raises(SignInRefused) as info:
            sign_in_with_password(station, "carol", "carol passphrase 9")
        assert info.value.code == "signin.unknown_operator"
    finally:
        station.close()
    events = audit_events(home)
    signed = [e for e in events if e["action"] == "operator.signed_in"]
    assert [(e["actor"], e["details"]["method"]) for e in signed] == [("adm", "password")] * 2
    assert {e["action"]: e["actor"] for e in events}["operator.added"] == "adm"
    assert {e["action"]: e["actor"] for e in events}["operator.disabled"] == "adm"
    assert "carol passphrase 9" not in json.dumps(events) and SECRETS["adm"] not in json.dumps(events)


@pytest.mark.parametrize("command", [
    ["operators", "add", "--id", "eve", "--name", "Eve", "--role", "administrator", "--password-stdin"],
    ["operators", "disable", "--id", "reg"],
    ["credentials", "revoke", "1f", "--reason", "keyCompromise"],
    ["requests", "cancel", "1"],
])
def test_self_declared_actor_is_refused(home, command):  # noqa: F811
    """`--operator anyone` with no secret, or no --operator at all: refused, one line, exit 3,
    nothing changed."""
    for operator in ("anyone", None):
        result = station_cli(home, *command, operator=operator, secret="", stdin="eve passphrase 12\n")
        assert result.returncode == REFUSED, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    now = listed(home)
    assert "eve" not in now and now["reg"]["active"]
    refused = [e for e in audit_events(home) if e["action"] == "operator.signin_refused"]
    assert refused and refused[-1]["actor"] == "anyone"


@pytest.mark.parametrize("operator, command, role", [
    ("reg", ["operators", "add", "--id", "eve", "--name", "Eve", "--role", "supervisor", "--password-stdin"], "administrator"),
    ("sup", ["operators", "disable", "--id", "reg"], "administrator"),
    ("sup", ["credentials", "revoke", "1f", "--reason", "keyCompromise"], "administrator"),
    ("reg", ["requests", "cancel", "1"], "supervisor"),
    ("adm", ["requests", "cancel", "1"], "supervisor"),
])
def test_wrong_role_is_refused(home, operator, command, role):  # noqa: F811
    result = station_cli(home, *command, operator=operator, stdin="eve passphrase 12\n")
    assert result.returncode == REFUSED and f"does not hold the {role} role" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "eve" not in listed(home) and listed(home)["reg"]["active"]


def test_the_last_administrator_stays(home):  # noqa: F811
    """Disabling the only administrator would leave nobody to enrol operators or revoke."""
    alone = ops(home, "disable", "--id", "adm")
    assert alone.returncode == 2 and "last active administrator" in alone.stderr and listed(home)["adm"]["active"]
    assert ops(home, "add", "--id", "ada", "--name", "Ada", "--role", "administrator", "--password-stdin",
               stdin="ada passphrase 12\n").returncode == 0
    assert ops(home, "disable", "--id", "adm").returncode == 0 and not listed(home)["adm"]["active"]


def test_wrong_secret_is_refused(home):  # noqa: F811
    result = ops(home, "disable", "--id", "reg", secret="not the passphrase")
    assert result.returncode == REFUSED and "wrong password" in result.stderr and "not the passphrase" not in result.stderr
    assert listed(home)["reg"]["active"]


@pytest.mark.parametrize("roles, rule", [
    (["administrator", "registrar"], "administrator never issues"),
    (["administrator", "supervisor"], "administrator never issues"),
    (["auditor", "supervisor"], "auditor is read-only"),
])
def test_separation_of_duties_at_enrolment(home, roles, rule):  # noqa: F811
    args = [a for r in roles for a in ("--role", r)]
    result = ops(home, "add", "--id", "dave", "--name", "Dave", *args, "--piv-cert", str(PIV_AUTH))
    assert result.returncode != 0 and rule in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_one_card_is_one_operator(home):  # noqa: F811
    """The card enrolled as a supervisor is refused as anyone else (by its certificate, its
    FASC-N or its card UUID), so one person cannot open and approve their own request."""
    assert ops(home, "add", "--id", "frank", "--name", "Frank", "--role", "supervisor", "--piv-cert", str(PIV_AUTH)).returncode == 0
    for other, role in (("frank-reg", "registrar"), ("frank-adm", "administrator"), ("frank-aud", "auditor")):
        again = ops(home, "add", "--id", other, "--name", other, "--role", role, "--piv-cert", str(PIV_AUTH))
        assert again.returncode != 0 and "already enrolled for operator 'frank'" in again.stderr
    frank = listed(home)["frank"]
    with Station.open(StationHome(home)) as station:
        for fascn, card_uuid in ((frank["card_fascn"], None), (None, frank["card_uuid"].upper())):
            with pytest.raises(OperatorError) as info:
                add_operator(station, "frank2", display_name="F", roles=[Role.REGISTRAR], auth_method=AuthMethod.PIV,
                             auth_reference="cd" * 32, actor="adm", card_fascn=fascn, card_uuid=card_uuid)
            assert info.value.code == "separation.card_enrolled"
    assert set(listed(home)) == {"adm", "reg", "sup", "frank"}


@pytest.mark.parametrize("cert, why", [
    ("station CA", "digitalSignature"),  # the station's own CA certificate
    (CARD_AUTH, "policy"),  # the golden card's Card Authentication certificate (another policy)
])
def test_piv_cert_must_be_a_piv_authentication_certificate(home, cert, why):  # noqa: F811
    path = home / "ca" / "ca-cert.pem" if cert == "station CA" else cert
    result = ops(home, "add", "--id", "gina", "--name", "Gina", "--role", "registrar", "--piv-cert", str(path))
    assert result.returncode != 0 and "PIV Authentication certificate" in result.stderr and why in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "gina" not in listed(home)


def test_administrator_signs_in_with_own_piv_card(home, insert_card, pcscd):  # noqa: F811
    """PKI-AUTH of the administrator's card under the operator trust profile; the secret line is
    its PIN. Passwords switched off: the administrator can still act, a password cannot be enrolled."""
    from station.devices.virtual import load_card_image

    cert = x509.load_pem_x509_certificate((OPERATOR_CARD / "3 - ICAM_PIV_Auth_SP_800-73-4.crt").read_bytes())
    with Station.open(StationHome(home)) as station:
        add_operator(station, "pat", display_name="Pat", roles=[Role.ADMINISTRATOR], auth_method=AuthMethod.PIV,
                     auth_reference=cert.fingerprint(hashes.SHA256()).hex(), actor="adm")
        station.home.save_config({**station.config, "operators": {"allow_passwords": False}})
    insert_card(load_card_image(OPERATOR_CARD, pin=OPERATOR_PIN), slot=1)
    card_args = ["--operator-reader", pcscd.reader(1)]
    password = ops(home, "add", "--id", "erin", "--name", "Erin", "--role", "registrar", "--password-stdin", *card_args,
                   operator="pat", secret=OPERATOR_PIN, stdin="erin passphrase 1\n", env=pcscd.env)
    assert password.returncode == 2 and "does not allow operator passwords" in password.stderr
    assert "allow_passwords = true" in password.stderr and len(password.stderr.strip().splitlines()) == 1
    disabled = ops(home, "disable", "--id", "reg", *card_args, operator="pat", secret=OPERATOR_PIN, env=pcscd.env)
    assert disabled.returncode == 0, disabled.stderr
    assert not listed(home)["reg"]["active"] and OPERATOR_PIN not in disabled.stdout + disabled.stderr
    wrong = ops(home, "disable", "--id", "sup", *card_args, operator="pat", secret="999999", env=pcscd.env)
    assert wrong.returncode == REFUSED and "pin-incorrect" in wrong.stderr and listed(home)["sup"]["active"]
    methods = [(e["actor"], e["details"]["method"]) for e in audit_events(home) if e["action"] == "operator.signed_in"]
    assert methods == [("pat", "piv"), ("pat", "piv")]


def test_operator_card_identity_keeps_them_from_being_served(home, icam_profile, crl_cache, softhsm_conf):  # noqa: F811
    """An operator enrolled with the FASC-N and card UUID of the golden card (as its Card
    Authentication certificate carries them) under another certificate: still not served."""
    from station.validation.piv_objects import cert_identifiers

    ids = cert_identifiers(x509.load_pem_x509_certificate(CARD_AUTH.read_bytes()))
    station = Station.open(StationHome(home))
    try:
        add_operator(station, "frank", display_name="Frank", roles=[Role.SUPERVISOR], auth_method=AuthMethod.PIV,
                     auth_reference="cd" * 32, actor="adm", card_fascn=ids.fascn.hex(), card_uuid=str(uuid.UUID(bytes=ids.uuid)))
        frank = {o["id"]: o for o in json.loads(ops(home, "list", "--json", operator=None).stdout)}["frank"]
        assert frank["card_fascn"] == "D13810D828AF2C1084246DA1685828AF0210848D84E739C3EB"
        assert frank["card_uuid"] == "94e28c68-84db-44db-8a0e-f502d6689b14"
        eng = engine(station, icam_profile, crl_cache)
        target = open_target(init_softhsm_token("op-check", "55667788"))
        from tests.issuance import test_engine

        test_engine.SECRETS.update(SECRETS)
        with pytest.raises(IssuanceRefused) as info:
            eng.open_request(card(), registrar="reg", aal="AAL2", target=target)
        assert info.value.code == "separation.applicant_is_operator" and "frank" in str(info.value)
    finally:
        station.close()


GOLDEN_IDS = {"card_fascn": "D13810D828AF2C1084246DA1685828AF0210848D84E739C3EB",
              "card_uuid": "94e28c68-84db-44db-8a0e-f502d6689b14",
              "cardholder_uuid": "db175391-4749-4a32-977d-7a3843775e8a"}  # the golden card's CHUID


@pytest.mark.parametrize("matching", sorted(GOLDEN_IDS))
def test_one_identifier_of_an_operators_card_keeps_its_holder_from_being_served(home, icam_profile, crl_cache, softhsm_conf,  # noqa: F811
                                                                                  matching):
    """An operator sharing a single identifier with the golden card, the others their own: its
    FASC-N, its card UUID, or its cardholder UUID (learnt at the operator's PIV sign-in). Each
    alone makes the golden card's holder the operator, not an applicant (issue 9 §3)."""
    own = {"card_fascn": "D1" * 25, "card_uuid": str(uuid.uuid4()), "cardholder_uuid": str(uuid.uuid4())}
    station = Station.open(StationHome(home))
    try:
        add_operator(station, "gina", display_name="Gina", roles=[Role.SUPERVISOR], auth_method=AuthMethod.PIV,
                     auth_reference="ef" * 32, actor="adm", **{**own, matching: GOLDEN_IDS[matching]})
        eng = engine(station, icam_profile, crl_cache)
        target = open_target(init_softhsm_token(f"holder-{matching[:9]}", "55667788"))
        from tests.issuance import test_engine

        test_engine.SECRETS.update(SECRETS)
        with pytest.raises(IssuanceRefused) as info:
            eng.open_request(card(), registrar="reg", aal="AAL2", target=target)
        assert info.value.code == "separation.applicant_is_operator" and "gina" in str(info.value)
    finally:
        station.close()


def test_approval_compares_the_card_identity_of_approver_and_registrar(home, icam_profile, crl_cache, softhsm_conf):  # noqa: F811
    """Two operator records of one PIV card (a FASC-N written behind the station's back, or
    enrolled before cards were unique): the approver is the registrar, refused."""
    from sqlalchemy import text

    from tests.issuance import test_engine

    test_engine.SECRETS.update(SECRETS, sam="supervisor passphrase 4")
    station = Station.open(StationHome(home))
    try:
        add_operator(station, "sam", display_name="Sam", roles=[Role.SUPERVISOR], auth_method=AuthMethod.PASSWORD,
                     auth_reference=hash_password("supervisor passphrase 4"), actor="adm")
        with station.db.transaction() as session:
            session.execute(text("UPDATE operators SET card_fascn = 'D13810D828AB6C10C339E5A1685A08C92ADE0A6184E739C3E7'"
                                 " WHERE identity IN ('reg', 'sam')"))
        eng = engine(station, icam_profile, crl_cache)
        target = open_target(init_softhsm_token("same-person", "55667788"))
        request_id = eng.open_request(card(), registrar="reg", aal="AAL2", target=target)
        with pytest.raises(IssuanceRefused) as info:
            eng.approve(request_id, approver="sam")
        assert info.value.code == "issuance.separation_of_duties"
        assert eng.state(request_id) == "requested"
        target.close()
    finally:
        station.close()
