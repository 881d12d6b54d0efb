"""Operator sign-in: argon2id passwords only where allowed, PIV cards by PKI-AUTH; all audited."""

import io
import threading
import time

import pytest

from station.cancel import Cancelled
from station.validation.verdict import Identity, Verdict
from station.issuance.signin import SignInRefused, hash_password, sign_in, sign_in_with_password, sign_in_with_piv
from station.terms import AuthMethod, Role
from station.service.operators import add_operator

PASSWORD = "correct horse battery staple"
CARD_SHA256 = "ab" * 32


@pytest.fixture
def operators(sqlite_station):
    st = sqlite_station
    add_operator(st, "alice", display_name="Alice", roles=[Role.REGISTRAR], auth_method=AuthMethod.PASSWORD,
                 auth_reference=hash_password(PASSWORD), actor="admin")
    add_operator(st, "bob", display_name="Bob", roles=[Role.SUPERVISOR], auth_method=AuthMethod.PIV,
                 auth_reference=CARD_SHA256, actor="admin")
    return st


def audit_text(st) -> str:
    from station.audit.export import export_jsonl

    out = io.StringIO()
    with st.db.transaction() as session:
        export_jsonl(session, out)
    return out.getvalue()


def test_passwords_refused_unless_configuration_allows_them(operators):
    with pytest.raises(SignInRefused) as info:
        sign_in_with_password(operators, "alice", PASSWORD)
    assert info.value.code == "signin.passwords_disabled"
    assert '"signin.passwords_disabled"' in audit_text(operators)


def test_password_sign_in(operators):
    operators.config["operators"] = {"allow_passwords": True}
    signed = sign_in_with_password(operators, "alice", PASSWORD)
    assert signed.identity == "alice" and signed.method == "password" and "registrar" in signed.roles
    with pytest.raises(SignInRefused) as info:
        sign_in_with_password(operators, "alice", "wrong horse battery staple")
    assert info.value.code == "signin.wrong_password"
    with pytest.raises(SignInRefused) as info:
        sign_in_with_password(operators, "bob", PASSWORD)
    assert info.value.code == "signin.wrong_method"
    with pytest.raises(SignInRefused) as info:
        sign_in_with_password(operators, "mallory", PASSWORD)
    assert info.value.code == "signin.unknown_operator"
    text = audit_text(operators)
    assert text.count('"operator.signed_in"') == 1 and text.count('"operator.signin_refused"') == 3
    assert PASSWORD not in text and "wrong horse" not in text


def test_piv_sign_in(operators):
    accepted = Verdict("accept", [], [], Identity(sha256_fingerprint=CARD_SHA256.upper()))
    assert sign_in_with_piv(operators, "bob", accepted).piv_auth_sha256 == CARD_SHA256
    other = Verdict("accept", [], [], Identity(sha256_fingerprint="cd" * 32))
    with pytest.raises(SignInRefused, match="registered PIV card"):
        sign_in_with_piv(operators, "bob", other)
    rejected = Verdict("reject", ["cert-revoked"], ["cert-revoked: …"], Identity(sha256_fingerprint=CARD_SHA256))
    with pytest.raises(SignInRefused) as info:
        sign_in_with_piv(operators, "bob", rejected)
    assert info.value.code == "signin.card_rejected" and "cert-revoked" in str(info.value)


def test_an_action_needs_its_role(operators):
    """Signed in is not enough: the action's role is checked, and a refusal is audited."""
    operators.config["operators"] = {"allow_passwords": True}
    assert sign_in(operators, "alice", lambda: PASSWORD, Role.REGISTRAR).identity == "alice"
    with pytest.raises(SignInRefused) as info:
        sign_in(operators, "alice", lambda: PASSWORD, Role.ADMINISTRATOR)
    assert info.value.code == "separation.role" and info.value.exit_code == 1 and "administrator role" in str(info.value)
    assert '"separation.role"' in audit_text(operators) and PASSWORD not in audit_text(operators)


def test_piv_sign_in_learns_the_cardholder_and_refuses_a_second_operator_for_them(operators):
    """The cardholder UUID (verified by PKI-AUTH) is recorded at the operator's first PIV
    sign-in; another operator's card with the same cardholder is refused, and so is enrolling
    that cardholder again."""
    from station.service.operators import OperatorError, list_operators

    holder = "0f0e0d0c-0b0a-4908-8706-050403020100"
    signed = Verdict("accept", [], [], Identity(sha256_fingerprint=CARD_SHA256, cardholder_uuid=holder.upper()))
    sign_in_with_piv(operators, "bob", signed)
    assert {o["id"]: o for o in list_operators(operators)}["bob"]["cardholder_uuid"] == holder
    assert f'"cardholder_uuid": "{holder}"' in audit_text(operators)
    with pytest.raises(OperatorError) as info:
        add_operator(operators, "bob2", display_name="Bob", roles=[Role.REGISTRAR], auth_method=AuthMethod.PIV,
                     auth_reference="ef" * 32, actor="admin", cardholder_uuid=holder)
    assert info.value.code == "separation.card_enrolled" and "'bob'" in str(info.value)
    add_operator(operators, "carl", display_name="Carl", roles=[Role.REGISTRAR], auth_method=AuthMethod.PIV,
                 auth_reference="ef" * 32, actor="admin")
    second = Verdict("accept", [], [], Identity(sha256_fingerprint="EF" * 32, cardholder_uuid=holder))
    with pytest.raises(SignInRefused) as info:
        sign_in_with_piv(operators, "carl", second)
    assert info.value.code == "separation.card_enrolled" and "'bob'" in str(info.value)
    assert {o["id"]: o for o in list_operators(operators)}["carl"]["cardholder_uuid"] is None


def test_short_operator_password_refused():
    with pytest.raises(SignInRefused) as info:
        hash_password("short")
    assert info.value.code == "signin.weak_password" and "short" not in str(info.value)



def _checking_password() -> threading.Thread | None:
    return next((t for t in threading.enumerate() if t.name == "argon2id check"), None)


def test_a_cancel_during_the_password_check_stops_it_at_once_and_records_nothing(operators):
    """The argon2id check (~0.1 s) runs on a helper thread: a cancel set while it runs gives
    ``Cancelled`` within a few milliseconds (the check is abandoned, its result dropped), no
    sign-in and no refusal is recorded, and the password is in no frame of the traceback."""
    operators.config["operators"] = {"allow_passwords": True}
    before = audit_text(operators)
    cancel, caught, ended = threading.Event(), [], []

    def signing_in():
        try:
            sign_in(operators, "alice", lambda: PASSWORD, Role.REGISTRAR, cancel=cancel)
        except Cancelled as exc:
            ended.append(time.perf_counter())
            caught.append(exc)

    worker = threading.Thread(target=signing_in)
    worker.start()
    deadline = time.monotonic() + 10
    while (helper := _checking_password()) is None and time.monotonic() < deadline:
        time.sleep(0.0005)
    assert helper is not None, "the password check did not run on its helper thread"
    set_at = time.perf_counter()
    cancel.set()
    worker.join(5)
    assert caught, "the sign-in was not cancelled"
    assert (ended[0] - set_at) * 1000 < 50
    helper.join(5)  # the abandoned check ends on its own; its result is dropped
    assert audit_text(operators) == before
    frames, tb = [], caught[0].__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    assert frames and all(PASSWORD not in repr(value) for frame in frames for value in frame.f_locals.values())
    # the same sign-in without a cancel still works, and is recorded
    assert sign_in(operators, "alice", lambda: PASSWORD, Role.REGISTRAR, cancel=threading.Event()).identity == "alice"
    assert audit_text(operators).count('"operator.signed_in"') == before.count('"operator.signed_in"') + 1


def test_a_cancel_set_before_the_password_check_records_nothing(operators):
    operators.config["operators"] = {"allow_passwords": True}
    before = audit_text(operators)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        sign_in_with_password(operators, "alice", PASSWORD, cancel=cancel)
    assert audit_text(operators) == before and _checking_password() is None
