"""The demo's embedded world, for ``make demo`` and training: everything the station needs,
made in a throwaway folder and torn down after.

* the GSA ICAM test PKI served on loopback (:class:`~station.sim.pki_mirror.PkiMirror`) and
  its trust profile, so the applicant's golden test card passes PKI-AUTH with real
  revocation checks;
* a station home with its own derived PIV issuing CA (demo keyring file: never for real
  secrets), the administrator made by ``init`` and a registrar and a supervisor who sign in
  with passwords the demo shows;
* an in-process virtual reader holding the golden card (no pcscd needed:
  :mod:`station.devices.virtual.readers`), which the demo controls pull and put back;
* the target: a SoftHSM token, in a SoftHSM configuration of its own, which the demo
  controls unplug (delete) and plug in again (a fresh token with its transport PIN); or, with
  ``target="piv"`` (``station demo --target piv``, ``make demo-piv``), a blank virtual PIV
  token in a second in-process reader (factory PIN, PUK and management key), plugged in and
  pulled out alike;
* the applicant's phone, offered beside the token (or alone: ``target="phone"``): the
  enrollment service on a free loopback port, trusting the TEST key attestation root (demo
  only: its key is published), played by the wizard's "Simulate phone".

No Qt here: the GUI demo (:mod:`station.ui.demo`) and the tests use it alike.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from station.errors import StationError
from station.home import StationHome

SOFTHSM_MODULE = "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"
SO_PIN = "12345678"
CARD_PIN = "246810"  # the demo applicant's PIV card PIN
TRANSPORT_PIN = "55667788"  # the token's PIN as delivered; activation replaces it with the applicant's
NEW_PIN = "73915824"  # what the scripted applicant chooses (headless demo)
OPERATORS = {"registrar": "registrar passphrase", "supervisor": "supervisor passphrase"}  # identity: password
ADMIN = ("admin", "administrator passphrase")  # the demo station's first administrator and their password
GOLDEN = "46_Golden_FIPS_201-2_PIV"
DEFAULT_ICAM = Path(__file__).resolve().parents[2].parent / "shared" / "icam-test-pki"
READER = "Station demo reader 0"
TOKEN_LABEL = "demo-token"
TOKEN_NAME = "SoftHSM token (demo; software, AAL2)"
PIV_READER = "Station demo token reader 1"
PIV_TOKEN_NAME = "PIV token (demo; virtual, in its own reader)"
PHONE_NAME = "Applicant's phone (demo; the reference phone client)"
TARGETS = ("softhsm", "piv", "phone")


class DemoIncomplete(StationError):
    code = "demo.incomplete"
    hint = "pass --icam DIR naming the GSA ICAM test PKI folder (the one holding cards/ and pki/)"


def demo_station(root: Path, trust_profile: Path, roles: dict, passwords: dict[str, str], config: dict | None = None):
    """A station home in ``root`` with its own issuing CA (demo keyring file: never for real
    secrets) and operators who sign in with passwords: the administrator ``ADMIN`` (made by
    init), who signs in and enrols ``roles`` {identity: Role} with ``passwords`` {identity:
    password}. ``config``: more configuration sections."""
    from station.issuance.signin import hash_password, sign_in
    from station.service.operators import add_operator
    from station.service.setup import InitOptions, initialize
    from station.service.station import Station
    from station.terms import AuthMethod, Role

    home = StationHome(root)
    admin, admin_password = ADMIN
    initialize(home, InitOptions(trust_profile=trust_profile, demo=True, ca_issuers_url="http://pki.station.test/ca.p7c",
                                 crl_url="http://pki.station.test/ca.crl", admin=admin,
                                 admin_password_hash=hash_password(admin_password), allow_operator_passwords=True))
    with Station.open(home) as station:
        signed = sign_in(station, admin, lambda: admin_password, Role.ADMINISTRATOR)
        for identity, role in roles.items():
            add_operator(station, identity, display_name=identity.capitalize(), roles=[role], auth_method=AuthMethod.PASSWORD,
                         auth_reference=hash_password(passwords[identity]), actor=signed.identity)
        if config:
            home.save_config({**station.config, **config})
    return home


class DemoEnvironment:
    """``with DemoEnvironment(icam) as demo:`` a station home (``demo.home``), its ``[ui]``
    settings naming the demo reader and the targets (:attr:`offers`), and :meth:`insert_card` / :meth:`remove_card` /
    :meth:`plug_token` / :meth:`unplug_token` for the demo controls."""

    def __init__(self, icam: Path = DEFAULT_ICAM, target: str = "softhsm"):
        if target not in TARGETS:
            raise ValueError(f"the demo's targets are {', '.join(TARGETS)}")
        self.target = target
        self.icam = Path(icam)
        if not (self.icam / "cards" / GOLDEN).is_dir():
            raise DemoIncomplete(f"no GSA ICAM test cards in {self.icam / 'cards'}")
        self.work: Path | None = None
        self.home: StationHome | None = None
        self.operators = dict(OPERATORS, **{ADMIN[0]: ADMIN[1]})
        self._mirror = None
        self._saved_env: dict[str, str | None] = {}

    @property
    def token_uri(self) -> str:
        if self.target == "piv":
            from station.issuance.targets.piv_uri import PivUri

            return str(PivUri(PIV_READER))
        return f"pkcs11:token={TOKEN_LABEL}?module-path={SOFTHSM_MODULE}&pin-value={TRANSPORT_PIN}"

    @property
    def _roots(self) -> Path:
        return self.work / "attestation-roots.pem"

    @property
    def token_name(self) -> str:
        return PIV_TOKEN_NAME if self.target == "piv" else TOKEN_NAME

    @property
    def offers(self) -> dict[str, str]:
        """The targets offered (``[ui] targets``), in order: the token (none in the phone's own
        demo), then the phone."""
        token = {} if self.target == "phone" else {self.token_name: self.token_uri}
        return {**token, PHONE_NAME: "phone:"}

    def __enter__(self) -> DemoEnvironment:
        from station.sim.pki_mirror import PkiMirror
        from station.terms import Role

        self.work = Path(tempfile.mkdtemp(prefix="station-demo-"))
        try:
            (self.work / "tokens").mkdir()
            (self.work / "softhsm2.conf").write_text(f"directories.tokendir = {self.work / 'tokens'}\nobjectstore.backend = file\n")
            self._set_env("SOFTHSM2_CONF", str(self.work / "softhsm2.conf"))
            from station.devices.virtual.readers import READERS

            if self.target == "piv":
                READERS.add_reader(PIV_READER)
            self.plug_token()
            self._mirror = PkiMirror(self.icam).__enter__()
            profile = self._mirror.write_profile(self.work / "icam-test.toml")
            from station.enrollment.test_attestation import TEST_ROOT_CERT

            ui = {"idle_lock_minutes": 5, "applicant_reader": READER, "targets": self.offers}
            # the virtual tokens' test attestation roots (one per token plugged in): AAL3 may be chosen
            targets = {"attestation_roots": [str(self._roots)]} if self.target == "piv" else {}
            # the phone's EST service on a free loopback port; the TEST attestation root: AAL3 onto the demo's phone
            enrollment = {"host": "127.0.0.1", "port": 0, "attestation_roots": [str(TEST_ROOT_CERT)]}
            self.home = demo_station(self.work / "home", profile, {"registrar": Role.REGISTRAR, "supervisor": Role.SUPERVISOR},
                                     OPERATORS, {"ui": ui, "enrollment": enrollment, **({"targets": targets} if targets else {})})
            READERS.add_reader(READER)
            self.insert_card()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _set_env(self, name: str, value: str) -> None:
        self._saved_env.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    # --- the demo controls ---------------------------------------------------------------------------
    def insert_card(self) -> None:
        from station.devices.virtual import load_card_image
        from station.devices.virtual.readers import READERS

        if not READERS.state(READER)[0]:
            READERS.insert(READER, load_card_image(self.icam / "cards" / GOLDEN, pin=CARD_PIN))

    def remove_card(self) -> None:
        from station.devices.virtual.readers import READERS

        READERS.remove(READER)

    def card_present(self) -> bool:
        from station.devices.virtual.readers import READERS

        return READERS.owns(READER) and READERS.state(READER)[0]

    def plug_token(self) -> None:
        """A fresh token with its transport PIN (the previous one, if any, goes first)."""
        if self.target == "phone":
            return
        self.unplug_token()
        if self.target == "piv":
            from station.devices.virtual import blank_token
            from station.devices.virtual.readers import READERS

            token = blank_token(label="demo PIV token")
            with open(self._roots, "ab") as roots:
                roots.write(token.attestation_root_pem())
            READERS.insert(PIV_READER, token)
            return
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN_LABEL, "--pin", TRANSPORT_PIN,
                        "--so-pin", SO_PIN], check=True, capture_output=True, timeout=30)

    def unplug_token(self) -> None:
        if self.target == "phone":
            return
        if self.target == "piv":
            from station.devices.virtual.readers import READERS

            if READERS.owns(PIV_READER) and READERS.state(PIV_READER)[0]:
                READERS.remove(PIV_READER)
            return
        subprocess.run(["softhsm2-util", "--delete-token", "--token", TOKEN_LABEL], capture_output=True, timeout=30)

    def __exit__(self, *exc) -> None:
        from station.devices.virtual.readers import READERS

        READERS.clear()
        if self._mirror is not None:
            self._mirror.__exit__(None, None, None)
            self._mirror = None
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
