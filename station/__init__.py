"""Derived PIV issuance station (NIST SP 800-157)."""

__version__ = "0.1.0"
