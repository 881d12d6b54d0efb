"""Validation of a PIV card: its objects, their signatures, its certificate paths (docs/validation.md)."""
