"""What several issuance tests share: the two password operators of a test station, and what a
SoftHSM token holds as OpenSC's ``pkcs11-tool`` (a witness no one here wrote) lists it."""

from __future__ import annotations

import subprocess

from station.issuance.signin import hash_password
from station.service.operators import add_operator
from station.terms import AuthMethod, Role
from tests.conftest import SOFTHSM_MODULE

SECRETS = {"reg": "registrar passphrase 1", "sup": "supervisor passphrase 2"}
NOTHING = {"Private Key": 0, "Public Key": 0, "Certificate": 0}
ONE_CREDENTIAL = {"Private Key": 1, "Public Key": 1, "Certificate": 1}


def add_password_operators(station, *, supervisor_roles=(Role.SUPERVISOR,)):
    """``reg`` (registrar) and ``sup`` (``supervisor_roles``), signing in with :data:`SECRETS`."""
    station.config["operators"] = {"allow_passwords": True}
    add_operator(station, "reg", display_name="Registrar", roles=[Role.REGISTRAR], auth_method=AuthMethod.PASSWORD,
                 auth_reference=hash_password(SECRETS["reg"]), actor="admin")
    add_operator(station, "sup", display_name="Supervisor", roles=list(supervisor_roles), auth_method=AuthMethod.PASSWORD,
                 auth_reference=hash_password(SECRETS["sup"]), actor="admin")
    return station


def token_objects(label: str, pin: str) -> dict[str, int] | None:
    """What the token holds, logged in with ``pin`` (None: the token refuses that PIN)."""
    out = subprocess.run(["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", label, "--login", "--pin", pin,
                          "--list-objects"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        assert "CKR_PIN_INCORRECT" in out.stderr, out.stderr
        return None
    return {kind: out.stdout.count(f"{kind} Object") for kind in ("Private Key", "Public Key", "Certificate")}
