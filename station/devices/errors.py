"""Typed errors of the card layer.

Status words map to exception classes (ISO/IEC 7816-4, SP 800-73-4 Part 2 §5); transport
failures and malformed data have their own classes. No message ever carries a PIN.
"""

from __future__ import annotations

from station.errors import StationError


class CardError(StationError):
    """Something went wrong talking to a card."""

    code = "card-error"
    hint = "take the card out, put it back and try again"


class TlvError(CardError):
    """BER-TLV data is malformed (truncated, length past the end, bad tag)."""

    code = "malformed-data"
    hint = "the card's data is malformed: use another card or have the card re-issued"


class ProtocolError(CardError):
    """The card broke the protocol (endless GET RESPONSE, reply of the wrong shape)."""

    code = "protocol-error"
    hint = "take the card out, put it back and try again; if it happens again, use another card"


class TransportError(CardError):
    """The reader or the link to the card failed."""

    code = "io-error"
    hint = "check the reader's cable and the card's seating, then try again"


class CardRemoved(TransportError):
    code = "card-removed"
    hint = "put the card back in the reader and start again"


def sharing_violation(reader: str) -> TransportError:
    """Another connection holds the card in ``reader`` exclusively (SCARD_E_SHARING_VIOLATION),
    or this one asked for exclusive access while another is open."""
    return TransportError(f"another program holds the card in {reader} (sharing violation)",
                          hint="close the other program that holds the card, then try again")


class NoReader(StationError):
    code = "no-reader"
    hint = "connect a smart card reader, or name one that is listed"


class PcscNotRunning(NoReader):
    """The PC/SC service itself is missing: no reader can be seen, connected or not."""

    code = "pcsc-not-running"
    hint = "start the PC/SC service (systemctl start pcscd.socket) and try again"


class NoCard(StationError):
    code = "no-card"
    hint = "insert the card into the reader"


class NotPivCard(CardError):
    code = "not-piv"
    hint = "this card has no PIV application; use the applicant's PIV card"


class InterfaceRestricted(CardError):
    """SP 800-73-4: the operation is not allowed over the contactless interface."""

    code = "contactless-restricted"
    hint = "insert the card into a contact reader"


class InvalidPinFormat(StationError):
    code = "pin-format"
    hint = "a PIV PIN is 6 to 8 digits; a token PIN 6 to 8 characters from 0-9, A-Z, a-z"


class ApduError(CardError):
    """The card answered with an error status word."""

    code = "card-status"
    hint = "the card refused the command: check that it is the right card, then try again"

    def __init__(self, sw: int, message: str | None = None, **kw):
        self.sw = sw
        super().__init__(message or f"card returned status {sw:04X}", **kw)


class WrongLength(ApduError):
    pass


class SecurityStatusNotSatisfied(ApduError):
    code = "security-status"
    hint = "verify the PIN (or authenticate the management key) first"


class PinIncorrect(StationError):
    """A wrong PIN, whatever the device (yubikit's ``InvalidPinError``): a PIV card's 63Cx
    (``sw`` set, x tries left) or a PKCS#11 token's CKR_PIN_INCORRECT (``sw`` None; the
    token does not say how many tries are left: ``retries_left`` None)."""

    code = "pin-incorrect"
    hint = "type the PIN again carefully; when no try is left the PIN is blocked"

    def __init__(self, retries_left: int | None, message: str | None = None, *, sw: int | None = None,
                 hint: str | None = None):
        self.retries_left = retries_left
        self.sw = sw
        if message is None:
            message = "wrong PIN" if retries_left is None else f"wrong PIN, {retries_left} tries left"
        super().__init__(message, hint=hint)


class PinBlocked(StationError):
    """No PIN try left, whatever the device: a PIV card's 6983 (authentication method
    blocked: PIN or PUK retry counter at zero; ``sw`` set) or a PKCS#11 token's
    CKR_PIN_LOCKED (``sw`` None)."""

    code = "pin-blocked"
    hint = "the PIN is blocked; the card issuer must reset it"

    def __init__(self, message: str | None = None, *, sw: int | None = None, hint: str | None = None):
        self.sw = sw
        super().__init__(message or (f"card returned status {sw:04X}" if sw is not None else "the PIN is blocked"),
                         hint=hint)


class ConditionsNotSatisfied(ApduError):
    code = "conditions-not-satisfied"
    hint = "the card is not in a state to do this: take it out, put it back and start again"


class DataInvalid(ApduError):
    code = "data-invalid"
    hint = "the card refused the data sent to it: check that it is the right card"


class IncorrectParameters(ApduError):
    code = "incorrect-parameters"
    hint = "the card does not support this request: use a PIV card (SP 800-73-4)"


class FileNotFound(ApduError):
    """6A82: data object or application not found."""

    code = "not-found"
    hint = "the card does not hold this object: use a complete PIV card"


class NotEnoughMemory(ApduError):
    code = "card-full"
    hint = "the card or token has no room left: use an empty token"


class ReferenceNotFound(ApduError):
    """6A88: referenced data (key, PIN) not found."""

    code = "reference-not-found"
    hint = "the card has no such key or PIN: use a PIV card (SP 800-73-4)"


class InstructionNotSupported(ApduError):
    code = "not-supported"
    hint = "the card does not support this command: use a PIV card (SP 800-73-4)"


class ClassNotSupported(ApduError):
    code = "not-supported"


_SW_CLASSES: dict[int, type[ApduError]] = {
    0x6700: WrongLength,
    0x6982: SecurityStatusNotSatisfied,
    0x6984: DataInvalid,
    0x6985: ConditionsNotSatisfied,
    0x6A80: DataInvalid,
    0x6A81: InstructionNotSupported,
    0x6A82: FileNotFound,
    0x6A84: NotEnoughMemory,
    0x6A86: IncorrectParameters,
    0x6B00: IncorrectParameters,
    0x6A88: ReferenceNotFound,
    0x6D00: InstructionNotSupported,
    0x6E00: ClassNotSupported,
}


def error_for_sw(sw: int) -> ApduError | PinIncorrect | PinBlocked:
    """The exception for an error status word (not 9000, 61xx or 6Cxx)."""
    if sw & 0xFFF0 == 0x63C0:
        return PinIncorrect(sw & 0x0F, sw=sw)
    if sw == 0x6983:
        return PinBlocked(sw=sw)
    return _SW_CLASSES.get(sw, ApduError)(sw)
