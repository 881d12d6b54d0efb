"""``station init``: create (or import) the issuing CA of a new station home, with its first
administrator (``--admin ID``: their password is the first line of standard input, or their
PIV Authentication certificate is ``--admin-piv-cert FILE``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from station.cli import positive_int
from station.ca.ca_store import KEY_ALGORITHMS
from station.ca.pkcs11_signer import without_pin
from station.ca.profile import MAX_VALIDITY_DAYS
from station.home import StationHome
from station.service.operators import PasswordsNotAllowed
from station.service.setup import ADMIN_PASSWORD_REFUSED, InitError, InitOptions, initialize


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("init", help="create a station home with its issuing CA")
    p.add_argument("--home", help="station home folder (default: $STATION_HOME or the user data folder)")
    p.add_argument("--profile", required=True, type=Path, help="trust profile TOML of this station")
    p.add_argument("--ca-key", default="file", help="'file' (encrypted PKCS#8, passphrase in the OS keyring) or a pkcs11: URI (RFC 7512)")
    p.add_argument("--key-algorithm", default="P-256", choices=KEY_ALGORITHMS, help="algorithm of a new CA key")
    p.add_argument("--ca-subject", help="RFC 4514 name of a new CA (default names the station)")
    p.add_argument("--import-ca", type=Path, metavar="CERT", help="existing CA certificate (PEM, followed by its chain)")
    p.add_argument("--import-key", metavar="URI", help="its key: a pkcs11: URI or a PKCS#8 key file")
    p.add_argument("--db", help="database URL (default: SQLite in the home)")
    p.add_argument("--demo", action="store_true", help="demonstration station: allows a plain-file keyring")
    p.add_argument("--aia-url", help="caIssuers URL put in every certificate (http://)")
    p.add_argument("--crl-url", help="CRL distribution point put in every certificate (http://)")
    p.add_argument("--ocsp-url", help="OCSP responder URL (optional)")
    p.add_argument("--max-validity-days", type=positive_int, default=MAX_VALIDITY_DAYS,
                   help=f"longest validity of an issued credential, in days (default {MAX_VALIDITY_DAYS})")
    p.add_argument("--crl-hours", type=positive_int, default=24, help="CRL nextUpdate, hours after thisUpdate (above 0; default 24)")
    p.add_argument("--admin", required=True, metavar="ID", help="the first administrator (who enrols the other operators); "
                   "their password is the first line of standard input unless --admin-piv-cert is given")
    p.add_argument("--admin-piv-cert", type=Path, metavar="FILE", help="the administrator's PIV Authentication certificate "
                   "(PEM or DER): they sign in with their PIV card")
    p.add_argument("--enrollment-host", default="127.0.0.1", metavar="HOST",
                   help="the address phones reach the enrollment service at (the station's LAN address in an office; "
                        "its TLS certificate names it; default 127.0.0.1)")
    p.add_argument("--enrollment-port", type=int, default=8443, metavar="PORT", help="its TCP port (default 8443)")
    p.add_argument("--allow-operator-passwords", action="store_true",
                   help="operators may sign in with a password ([operators] allow_passwords; default: PIV cards only)")
    p.set_defaults(func=run)


def _admin_secret(args: argparse.Namespace) -> tuple[str | None, bytes | None]:
    """(argon2id hash of the administrator's password, or their certificate's bytes)."""
    from station.cli._station_args import stdin_line
    from station.issuance.signin import hash_password

    if args.admin_piv_cert is None:
        if not args.allow_operator_passwords:
            raise PasswordsNotAllowed(ADMIN_PASSWORD_REFUSED)  # before asking for a password
        return hash_password(stdin_line(f"the password of administrator {args.admin!r}")), None
    try:
        return None, args.admin_piv_cert.read_bytes()
    except OSError as exc:
        raise InitError(f"cannot read {args.admin_piv_cert}: {exc.strerror}", code=InitError.Code.ADMIN,
                        hint="give the administrator's PIV Authentication certificate file") from None


def run(args: argparse.Namespace) -> int:
    from station.cli._prompt import ca_token_pin, import_key_passphrase
    from station.validation.trust import TrustProfile

    TrustProfile.load(args.profile)  # whole, anchors too: a broken profile shows now, not at the first card
    home = StationHome.locate(args.home)
    admin_hash, admin_cert = _admin_secret(args)
    config = initialize(
        home,
        InitOptions(
            trust_profile=args.profile,
            ca_key=args.ca_key,
            key_algorithm=args.key_algorithm,
            ca_subject=args.ca_subject,
            import_ca=args.import_ca,
            import_key=args.import_key,
            db_url=args.db,
            demo=args.demo,
            ca_issuers_url=args.aia_url,
            crl_url=args.crl_url,
            ocsp_url=args.ocsp_url,
            max_validity_days=args.max_validity_days,
            crl_next_update_hours=args.crl_hours,
            admin=args.admin,
            admin_password_hash=admin_hash,
            admin_piv_cert=admin_cert,
            allow_operator_passwords=args.allow_operator_passwords,
            enrollment_host=args.enrollment_host,
            enrollment_port=args.enrollment_port,
        ),
        ask_pin=ca_token_pin,
        ask_passphrase=import_key_passphrase,
    )
    key = config["ca"]["key"]
    print(f"station {config['station_id']} initialised in {home.root}")
    print(f"  CA certificate: {home.path(config['ca']['certificate'])}")
    print(f"  CA key: {without_pin(key) if key.startswith('pkcs11:') else home.path(key.removeprefix('file:'))}")
    print(f"  secrets: {config['secrets']['store']}")
    print(f"  phone enrollment: https://{config['enrollment']['host']}:{config['enrollment']['port']}/.well-known/est/ "
          f"(TLS certificate {home.path('enrollment/tls-cert.pem')})")
    print(f"  administrator: {args.admin} ({'PIV card' if admin_cert else 'password'})")
    if ".invalid/" in config["profile"]["crl_url"]:
        print("  note: set [profile] ca_issuers_url and crl_url in station.toml to your published locations")
    return 0
