"""The station's error base.

Every error the station raises on purpose derives from :class:`StationError`: it carries a
short machine-readable ``code`` (the reason codes of the card verdicts, or a rule name) and a
``hint`` telling the person at the station what to do. Messages never contain a PIN, a
password or key material.
"""

from __future__ import annotations


class StationError(Exception):
    """An expected failure with a reason code and a hint for the operator."""

    code: str = "error"
    hint: str = ""

    def __init__(self, message: str, *, code: str | None = None, hint: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        if hint is not None:
            self.hint = hint

    def one_line(self) -> str:
        text = str(self)
        return f"{text} ({self.hint})" if self.hint else text
