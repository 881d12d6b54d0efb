"""What a key generation killed halfway leaves on a token, and how it is removed.

SoftHSM 2 writes a new object's file one attribute at a time, and ``CKA_ID`` and
``CKA_LABEL`` come late: a process killed inside ``C_GenerateKeyPair`` (power cut,
SIGKILL) can leave a public or private key object with neither, or an object whose every
attribute read fails (``CKR_ATTRIBUTE_VALUE_INVALID``). Such an object cannot be named by
the request's CKA_ID, and python-pkcs11 cannot even build a Python object for it (its
search raises), so this module finds and destroys them with the module's own
``C_FindObjects``/``C_DestroyObject`` through ctypes, in a session python-pkcs11 opened
(the library is loaded once per process, so the handle is the same module's).

A remnant is an object with no readable non-empty CKA_ID and no readable non-empty
CKA_LABEL whose class (when it can be read) is data, public key or private key. The
station only sweeps a token it holds the transport PIN of, when it discards the key it
made (``Pkcs11Token.destroy_key_pair``); a complete object always has the CKA_ID the
station gave it.
"""

from __future__ import annotations

import ctypes
import sys

CKR_OK = 0
CKA_CLASS, CKA_LABEL, CKA_ID = 0x0, 0x3, 0x102
CKO_DATA, CKO_PUBLIC_KEY, CKO_PRIVATE_KEY = 0, 2, 3
UNAVAILABLE = ctypes.c_ulong(-1).value  # CK_UNAVAILABLE_INFORMATION

_ULONG = ctypes.c_ulong


class _Attribute(ctypes.Structure):  # CK_ATTRIBUTE
    _fields_ = [("type", _ULONG), ("pValue", ctypes.c_void_p), ("ulValueLen", _ULONG)]


class Remnants:
    """The remnants visible in one logged-in session of the module at ``module_path``."""

    def __init__(self, module_path: str, session_handle: int):
        self._c = ctypes.CDLL(module_path)
        self._session = _ULONG(session_handle)

    def _handles(self) -> list[int]:
        c = self._c
        if c.C_FindObjectsInit(self._session, None, _ULONG(0)) != CKR_OK:
            return []
        found: list[int] = []
        batch, count = (_ULONG * 32)(), _ULONG()
        try:
            while c.C_FindObjects(self._session, batch, _ULONG(len(batch)), ctypes.byref(count)) == CKR_OK and count.value:
                found.extend(batch[:count.value])
        finally:
            c.C_FindObjectsFinal(self._session)
        return found

    def _read(self, handle: int, kind: int) -> bytes | None:
        """The attribute's value; None when the token cannot give it."""
        attribute = _Attribute(kind, None, 0)
        if self._c.C_GetAttributeValue(self._session, _ULONG(handle), ctypes.byref(attribute), _ULONG(1)) != CKR_OK \
                or attribute.ulValueLen == UNAVAILABLE:
            return None
        value = ctypes.create_string_buffer(attribute.ulValueLen)
        attribute.pValue = ctypes.cast(value, ctypes.c_void_p)
        if self._c.C_GetAttributeValue(self._session, _ULONG(handle), ctypes.byref(attribute), _ULONG(1)) != CKR_OK:
            return None
        return value.raw[:attribute.ulValueLen]

    def is_remnant(self, handle: int) -> bool:
        if self._read(handle, CKA_ID) or self._read(handle, CKA_LABEL):
            return False
        kind = self._read(handle, CKA_CLASS)
        return kind is None or int.from_bytes(kind, sys.byteorder) in (CKO_DATA, CKO_PUBLIC_KEY, CKO_PRIVATE_KEY)

    def find(self) -> list[int]:
        return [handle for handle in self._handles() if self.is_remnant(handle)]

    def destroy(self) -> int:
        """Destroy every remnant; returns how many went."""
        gone = 0
        for handle in self.find():
            gone += self._c.C_DestroyObject(self._session, _ULONG(handle)) == CKR_OK
        return gone
