"""What the configuration allows operators to sign in with, read without the service layer.

The desktop application's sign-in screen is built from the home's configuration before the
station (SQLAlchemy, the PKI) is imported, so this lives apart from
:mod:`station.issuance.signin`, which uses it too.
"""

from __future__ import annotations


def passwords_allowed(config: dict) -> bool:
    """``[operators] allow_passwords = true``: operators may sign in with a password."""
    return bool((config.get("operators") or {}).get("allow_passwords", False))
