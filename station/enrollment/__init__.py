"""The phone enrollment channel: EST (RFC 7030) over pinned TLS, bootstrapped by a QR code."""
