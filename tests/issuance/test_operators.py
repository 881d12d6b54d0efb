"""`station operators`: roles with separation of duties, PIV or password sign-in, disable; an
operator's card identity keeps them from serving themself."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from station.issuance.engine import IssuanceRefused
from station.issuance.signin import SignInRefused, sign_in_with_password
from station.issuance.targets import open_target
from tests.conftest import GOLDEN, init_softhsm_token
from tests.issuance.test_engine import card, engine
from tests.issuance.test_issue_cli import SECRETS, home  # noqa: F401  (the fixture)

STATION = [sys.executable, "-m", "station"]
CARD_AUTH = GOLDEN / "6 - ICAM_PIV_Card_Auth_SP_800-73-4.crt"


def ops(home, *args, stdin=""):  # noqa: F811
    return subprocess.run([*STATION, "operators", *args, "--home", str(home), "--operator", "admin"], input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_enrol_list_disable(home):  # noqa: F811
    assert ops(home, "add", "--id", "carol", "--name", "Carol", "--role", "registrar", "--password-stdin",
               stdin="carol passphrase 9\n").returncode == 0
    listed = {o["id"]: o for o in json.loads(ops(home, "list", "--json").stdout)}
    assert listed["carol"]["roles"] == ["registrar"] and listed["carol"]["auth"] == "password" and listed["carol"]["active"]
    assert ops(home, "disable", "--id", "carol").returncode == 0
    assert not {o["id"]: o for o in json.loads(ops(home, "list", "--json").stdout)}["carol"]["active"]
    from station.home import StationHome
    from station.service.station import Station

    station = Station.open(StationHome(home))
    try:
        with pytest.raises(SignInRefused) as info:
            sign_in_with_password(station, "carol", "carol passphrase 9")
        assert info.value.code == "signin.unknown_operator"
    finally:
        station.close()


@pytest.mark.parametrize("roles, rule", [
    (["administrator", "registrar"], "administrator never issues"),
    (["administrator", "supervisor"], "administrator never issues"),
    (["auditor", "supervisor"], "auditor is read-only"),
])
def test_separation_of_duties_at_enrolment(home, roles, rule):  # noqa: F811
    args = [a for r in roles for a in ("--role", r)]
    result = ops(home, "add", "--id", "dave", "--name", "Dave", *args, "--piv-cert", str(CARD_AUTH))
    assert result.returncode != 0 and rule in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_passwords_refused_where_not_allowed(home):  # noqa: F811
    from station.home import StationHome

    h = StationHome(home)
    config = h.load_config()
    config["operators"] = {"allow_passwords": False}
    h.save_config(config)
    result = ops(home, "add", "--id", "erin", "--name", "Erin", "--role", "registrar", "--password-stdin", stdin="erin passphrase 1\n")
    assert result.returncode != 0 and "does not allow operator passwords" in result.stderr


def test_operator_card_identity_keeps_them_from_being_served(home, icam_profile, crl_cache, softhsm_conf):  # noqa: F811
    """Enrolled with the Card Authentication certificate of the golden card: a different
    certificate, the same FASC-N and card UUID as the applicant's PIV Authentication one."""
    assert ops(home, "add", "--id", "frank", "--name", "Frank", "--role", "supervisor", "--piv-cert", str(CARD_AUTH)).returncode == 0
    frank = {o["id"]: o for o in json.loads(ops(home, "list", "--json").stdout)}["frank"]
    assert frank["card_fascn"] == "D13810D828AF2C1084246DA1685828AF0210848D84E739C3EB"
    assert frank["card_uuid"] == "94e28c68-84db-44db-8a0e-f502d6689b14"
    from station.home import StationHome
    from station.service.station import Station

    station = Station.open(StationHome(home))
    try:
        eng = engine(station, icam_profile, crl_cache)
        target = open_target(init_softhsm_token("op-check", "55667788"))
        from tests.issuance import test_engine

        test_engine.SECRETS.update(SECRETS)
        with pytest.raises(IssuanceRefused) as info:
            eng.open_request(card(), registrar="reg", aal="AAL2", target=target)
        assert info.value.code == "separation.applicant_is_operator" and "frank" in str(info.value)
    finally:
        station.close()
