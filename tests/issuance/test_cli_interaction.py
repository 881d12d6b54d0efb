"""The command line's people (station/cli/interaction.py): secrets from standard input in their
order, progress one line per event on standard error, and no failpoint in the shipped class."""

import inspect
import io

import pytest

from station.cli import interaction
from station.cli.interaction import InputExhausted, StdinInteraction
from station.issuance.progress import Progress, Step


def test_stdin_interaction_order():
    inter = StdinInteraction(io.StringIO("reg-secret\napp-secret\n246810\nk9Pz4mQ1\n"), registrar="alice", approver="bob")
    assert inter.operator_secret("bob", "approve") == "app-secret"
    assert inter.operator_secret("alice", "sign-in") == "reg-secret"
    assert inter.request_pin(pin_kind="application", tries_left=5) == "246810"
    assert inter.request_new_pin() == ("k9Pz4mQ1", "k9Pz4mQ1")
    assert inter.request_pin(pin_kind="credential", tries_left=None) == "k9Pz4mQ1"
    assert inter.confirm_photo(b"", "CN=x") is False
    assert inter.approve_request("request 1 for CN=x").approved is True
    short = StdinInteraction(io.StringIO("only-one\n"), registrar="alice", approver="bob")
    with pytest.raises(InputExhausted, match="applicant PIV PIN"):
        short.request_pin(pin_kind="application", tries_left=5)


def test_progress_is_one_line_per_event_on_the_stream():
    err = io.StringIO()
    inter = StdinInteraction(io.StringIO(""), progress_to=err)
    inter.progress(Progress(Step.PKI_AUTH, "checking the certificates", "checking revocation", fraction=0.6))
    inter.progress(Progress(Step.APPROVAL, "approved by sup", state="approved", request_id=3))
    assert err.getvalue() == "[pki-auth/checking revocation] checking the certificates\n[approval] approved by sup\n"
    StdinInteraction(io.StringIO("")).progress(Progress(Step.DELIVERY, "quiet"))  # no stream: nothing, no error


def test_the_shipped_class_has_no_failpoint():
    source = inspect.getsource(interaction)
    assert "STATION_TEST" not in source and "os.environ" not in source and ".wait(" not in source
