"""Verification of the CMS SignedData signatures on PIV data objects (RFC 5652 §5.4-5.6).

PIV signs the CHUID, the biometric CBEFF records and the Security Object with CMS
SignedData carrying signed attributes (SP 800-73-4 Part 1 §3.1.2, SP 800-76-2 §9, FIPS
201-3 §4.2.1). This module checks one such signature: the message digest attribute over
the content, the content type attribute, and the signature over the DER of the signed
attributes with the signer's public key. Whether the signer may sign it (EKU, validity,
path, revocation) is the caller's business.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from station.errors import StationError
from station.signatures import verify_signature

# SP 800-78-4 §3.2: PIV data objects are signed with SHA-256 or SHA-384 (SHA-512 and
# SHA-224 are accepted too); SHA-1 is not accepted.
_HASHES = {"sha224": hashes.SHA224, "sha256": hashes.SHA256, "sha384": hashes.SHA384,
           "sha512": hashes.SHA512}


class CmsError(StationError):
    code = "signature-invalid"
    hint = "the card's signed data is not trustworthy: use another card or have the card re-issued"


@dataclass
class SignedObject:
    """A verified CMS signature: who signed, when, and what it asserted."""

    signer_der: bytes
    signing_time: datetime | None
    content_type: str
    content: bytes  # the signed content (detached or encapsulated)
    attributes: dict[str, list[bytes]]  # dotted OID -> DER of each attribute value


def verify_signed_data(
    cms_der: bytes, *, detached_content: bytes | None = None, known_signers: list[bytes] = ()
) -> SignedObject:
    """Verify ``cms_der`` (a ContentInfo holding SignedData with one signer).

    ``detached_content``: the content for a detached signature; ``None`` for a signature
    that encapsulates its content. ``known_signers``: DER certificates to look for the
    signer in when the SignedData carries none (a biometric or Security Object signed with
    the CHUID signer's key, SP 800-73-4 Part 1 Appendix A).
    """
    try:
        info = cms.ContentInfo.load(cms_der)
        if info["content_type"].native != "signed_data":
            raise CmsError("not a CMS SignedData")
        signed = info["content"]
        signer_infos = list(signed["signer_infos"])
        if len(signer_infos) != 1:
            raise CmsError(f"expected one signer, found {len(signer_infos)}")
        si = signer_infos[0]
        encap = signed["encap_content_info"]
        content_type = encap["content_type"].dotted
        if detached_content is None:
            if encap["content"].native is None:
                raise CmsError("the signature encapsulates no content")
            content = bytes(encap["content"].native)
        else:
            if encap["content"].native is not None:
                raise CmsError("a detached signature must not encapsulate content")
            content = detached_content
        certs = [c.chosen.dump() for c in (signed["certificates"] or []) if c.name == "certificate"]
        signer_der = _find_signer(si["sid"], certs + list(known_signers))
        attrs = si["signed_attrs"]
        if not attrs:
            raise CmsError("no signed attributes")
        values = {a["type"].dotted: [v.dump() for v in a["values"]] for a in attrs}
        digest_name = si["digest_algorithm"]["algorithm"].native
        if digest_name not in _HASHES:
            raise CmsError(f"digest algorithm {digest_name} is not accepted")
        digest = hashlib.new(digest_name, content).digest()
        md = values.get("1.2.840.113549.1.9.4")
        if not md or len(md) != 1 or core.OctetString.load(md[0]).native != digest:
            raise CmsError("message digest does not match the signed content")
        ct = values.get("1.2.840.113549.1.9.3")
        if not ct or len(ct) != 1 or core.ObjectIdentifier.load(ct[0]).dotted != content_type:
            raise CmsError("content type attribute does not match the content")
        st = values.get("1.2.840.113549.1.9.5")
        signing_time = core.load(st[0]).native if st and len(st) == 1 else None
        if signing_time is not None and not isinstance(signing_time, datetime):
            raise CmsError("signing time attribute is not a time")
        to_verify = b"\x31" + attrs.dump()[1:]  # RFC 5652 §5.4: DER of SET OF, not [0]
        _verify_signature(signer_der, si, to_verify, digest_name)
    except CmsError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CmsError(f"malformed CMS signature: {exc}") from exc
    return SignedObject(signer_der, signing_time, content_type, content, values)


def _find_signer(sid, candidates: list[bytes]) -> bytes:
    for der in candidates:
        if sid.name == "issuer_and_serial_number":
            # serial first, then the encoded names, and only then RFC 5280 §7.1 name matching
            # (asn1crypto's normalizing comparison is slow and rarely needed)
            issuer = sid.chosen["issuer"]
            serial, issuer_der = _serial_and_issuer(der)
            if serial == sid.chosen["serial_number"].native and (
                    issuer_der == issuer.dump() or asn1_x509.Certificate.load(der).issuer == issuer):
                return der
        elif sid.name == "subject_key_identifier":
            if _key_identifier(der) == sid.chosen.native:
                return der
    raise CmsError("the signer's certificate is not available")


# A card's content signer signs its CHUID, biometrics and Security Object: its certificate is
# looked at four times in one PKI-AUTH. What is read from it depends on its bytes alone, so it
# is parsed once per certificate (bounded; a failure is not remembered and raises again).
@functools.lru_cache(maxsize=64)
def _serial_and_issuer(der: bytes) -> tuple[int, bytes]:
    cert = asn1_x509.Certificate.load(der)
    return cert.serial_number, cert.issuer.dump()


@functools.lru_cache(maxsize=64)
def _key_identifier(der: bytes) -> bytes | None:
    return asn1_x509.Certificate.load(der).key_identifier


@functools.lru_cache(maxsize=64)
def _public_key(der: bytes):  # noqa: ANN202
    return x509.load_der_x509_certificate(der).public_key()


def _verify_signature(signer_der: bytes, si, data: bytes, digest_name: str) -> None:
    try:
        key = _public_key(signer_der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CmsError(f"signer certificate unusable: {exc}") from exc
    algo = si["signature_algorithm"]
    sig_name = algo.signature_algo
    signature = si["signature"].native
    try:
        if sig_name == "rsassa_pss" and isinstance(key, rsa.RSAPublicKey):
            params = algo["parameters"]
            pss_hash = _HASHES[params["hash_algorithm"]["algorithm"].native]()
            salt = params["salt_length"].native
            key.verify(signature, data, padding.PSS(padding.MGF1(pss_hash), salt), pss_hash)
        elif (sig_name == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPublicKey)) or (
                sig_name == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey)):
            verify_signature(key, signature, data, _HASHES[_signature_hash(algo, digest_name)]())
        else:
            raise CmsError(f"signature algorithm {sig_name} does not fit the signer's key")
    except InvalidSignature as exc:
        raise CmsError("the signature does not verify") from exc


def _signature_hash(algo, digest_name: str) -> str:
    # A bare rsaEncryption (or ecPublicKey) signature OID names no hash: the digest
    # algorithm of the SignerInfo applies.
    try:
        name = algo.hash_algo
    except ValueError:
        return digest_name
    return name if name in _HASHES else digest_name
