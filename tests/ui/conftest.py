"""Fixtures of the interface's tests: a station with password operators, a SoftHSM token,
the golden card in the reader and the interface's context with the registrar signed in."""

from __future__ import annotations

import uuid

import pytest

from station.devices.virtual import load_card_image
from station.issuance.signin import sign_in_with_password
from station.ui.context import Settings, UiContext
from station.ui.worker import QtDeviceWorker
from tests.conftest import GOLDEN, TEST_PIN, init_softhsm_token
from tests.issuance.people import SECRETS, add_password_operators

TRANSPORT = "55667788"


@pytest.fixture
def station(sqlite_station, icam_profile_path):
    sqlite_station.config["trust_profile"] = str(icam_profile_path)
    return add_password_operators(sqlite_station)


@pytest.fixture
def token(softhsm_conf):
    label = f"ui-{uuid.uuid4().hex[:8]}"
    return label, init_softhsm_token(label, TRANSPORT)


@pytest.fixture
def ctx(qtbot, station, token, insert_card, pcscd):
    link = insert_card(load_card_image(GOLDEN, pin=TEST_PIN))
    worker = QtDeviceWorker()
    context = UiContext(station.home, station, worker, Settings(targets={"SoftHSM token": token[1]}))
    context.card_link = link  # tests pull the card with it
    context.set_operator(sign_in_with_password(station, "reg", SECRETS["reg"]))
    yield context
    worker.stop()


