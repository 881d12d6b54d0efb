"""Test-only helpers run by the tests (never shipped in the station package)."""
