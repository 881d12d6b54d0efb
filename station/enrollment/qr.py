"""The QR bootstrap: one ``dpiv://enroll`` URI (a published format; README "Phone enrollment").

``dpiv://enroll?v=1&est=<percent-encoded EST base URL>&fp=<lowercase hex SHA-256 of the station
TLS certificate's DER>&user=<user name>&otp=<one-time secret>&exp=<Unix seconds>``

A client trusts the EST server only when the certificate it presents hashes to ``fp``; it
enrolls with HTTP Basic ``user``:``otp`` before ``exp``. Rendered at error-correction level M
(15 % of the code may be lost to glare) with the quiet zone of four modules the standard
(ISO/IEC 18004) asks for.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit

from station.errors import Exit, StationError

SCHEME, VERSION = "dpiv", "1"


class PayloadError(StationError):
    """A QR payload that is not a ``dpiv://enroll`` URI of a version this client knows."""

    code = "phone.payload"
    exit_code = Exit.ERROR
    hint = "scan the code the station shows now (or ask the registrar for a new code)"


@dataclass(frozen=True)
class EnrollmentPayload:
    est: str  # the EST base URL, ending in "/"
    fp: str
    user: str
    otp: str
    exp: int

    def uri(self) -> str:
        return (f"{SCHEME}://enroll?v={VERSION}&est={quote(self.est, safe='')}&fp={self.fp}"
                f"&user={quote(self.user, safe='')}&otp={quote(self.otp, safe='')}&exp={self.exp}")

    @classmethod
    def parse(cls, uri: str) -> EnrollmentPayload:
        parts = urlsplit(uri.strip())
        if parts.scheme != SCHEME or parts.netloc != "enroll":
            raise PayloadError(f"not a {SCHEME}://enroll URI: {uri[:40]!r}")
        query = {k: v[0] for k, v in parse_qs(parts.query, strict_parsing=True).items()} if parts.query else {}
        if query.get("v") != VERSION:
            raise PayloadError(f"enrollment payload version {query.get('v')!r}; this client knows version {VERSION}")
        missing = [k for k in ("est", "fp", "user", "otp", "exp") if not query.get(k)]
        if missing:
            raise PayloadError(f"the enrollment payload lacks {', '.join(missing)}")
        if not re.fullmatch(r"[0-9a-f]{64}", query["fp"]) or not query["exp"].isdigit():
            raise PayloadError("the enrollment payload's fp or exp is malformed")
        if urlsplit(query["est"]).scheme != "https":
            raise PayloadError("the enrollment payload's EST address is not https")
        return cls(query["est"], query["fp"], query["user"], query["otp"], int(query["exp"]))


def png(text: str, *, box_size: int = 10) -> bytes:
    """``text`` as a QR code PNG (black on white, level M, four-module quiet zone)."""
    import qrcode
    from qrcode.constants import ERROR_CORRECT_M

    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=box_size, border=4)
    code.add_data(text)
    code.make(fit=True)
    out = io.BytesIO()
    code.make_image().save(out, format="PNG")
    return out.getvalue()


def matrix(text: str) -> list[list[bool]]:
    """The QR code's modules (True = dark), quiet zone included: the wizard draws them itself,
    sharp at any scale."""
    import qrcode
    from qrcode.constants import ERROR_CORRECT_M

    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=4)
    code.add_data(text)
    code.make(fit=True)
    return code.get_matrix()
