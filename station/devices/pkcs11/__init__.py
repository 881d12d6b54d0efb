"""PKCS#11 tokens (RFC 7512 URIs, python-pkcs11): keys generated on the token."""

from station.devices.pkcs11.token import Pkcs11Error, Pkcs11Token
from station.devices.pkcs11.uri import Pkcs11Uri, UriError

__all__ = ["Pkcs11Error", "Pkcs11Token", "Pkcs11Uri", "UriError"]
