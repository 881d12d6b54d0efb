"""The Derived PIV Authentication certificate profile, field by field."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from .ca_helpers import new_key, now
from station.ca.ca import IssuingCA, self_signed_ca_certificate
from station.ca.profile import (
    ID_PKINIT_KP_CLIENT_AUTH,
    MS_SMART_CARD_LOGON,
    AssuranceMismatch,
    ProfileError,
    ProfileSettings,
    UnsupportedKey,
    ValidityError,
    plan_certificate,
)
from station.ca.signer import PrivateKeySigner

SETTINGS = ProfileSettings(ca_issuers_url="http://pki.test/ca.p7c", crl_url="http://pki.test/ca.crl", ocsp_url="http://ocsp.pki.test")
CA_NAME = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"), x509.NameAttribute(NameOID.COMMON_NAME, "Test Derived CA")])
EXPECTED_EXTENSIONS = {
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER,
    ExtensionOID.KEY_USAGE,
    ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.CERTIFICATE_POLICIES,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
    ExtensionOID.CRL_DISTRIBUTION_POINTS,
}


@pytest.fixture(scope="module")
def ca() -> IssuingCA:
    signer = PrivateKeySigner(ec.generate_private_key(ec.SECP256R1()))
    return IssuingCA(self_signed_ca_certificate(CA_NAME, signer), signer)


def make(ca, pki, *, aal="AAL2", target="software", key=None, piv=None, settings=SETTINGS):
    piv = piv or pki.piv_auth()
    key = key or new_key()
    plan = plan_certificate(issuer=ca.certificate, subject_key=key.public_key(), piv_auth=piv, aal=aal, target=target, settings=settings)
    return ca.issue(plan), plan, piv, key


def ext(cert, cls):
    return cert.extensions.get_extension_for_class(cls)


def test_fields_of_a_software_aal2_certificate(ca, pki):
    cert, plan, piv, key = make(ca, pki)
    assert cert.version is x509.Version.v3
    cert.verify_directly_issued_by(ca.certificate)
    assert cert.signature_hash_algorithm.name == "sha256"
    assert cert.issuer == ca.certificate.subject
    # subject copied from the PIV Authentication certificate, encoding and all
    assert cert.subject.public_bytes() == piv.subject.public_bytes()
    assert cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert {e.oid for e in cert.extensions} == EXPECTED_EXTENSIONS

    policies = ext(cert, x509.CertificatePolicies)
    assert not policies.critical
    assert [p.policy_identifier.dotted_string for p in policies.value] == ["2.16.840.1.101.3.2.1.3.40"]
    assert all(p.policy_qualifiers is None for p in policies.value)

    ku = ext(cert, x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature
    assert not any(
        [ku.value.content_commitment, ku.value.key_encipherment, ku.value.data_encipherment, ku.value.key_agreement, ku.value.key_cert_sign, ku.value.crl_sign]
    )

    eku = ext(cert, x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.CLIENT_AUTH, ID_PKINIT_KP_CLIENT_AUTH]
    assert ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku.value

    san = ext(cert, x509.SubjectAlternativeName)
    assert not san.critical
    assert len(san.value) == 1
    (uri,) = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    assert re.fullmatch(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", uri)
    assert uri == plan.san_uuid.urn

    aia = ext(cert, x509.AuthorityInformationAccess).value
    assert [(d.access_method, d.access_location.value) for d in aia] == [
        (x509.AuthorityInformationAccessOID.CA_ISSUERS, "http://pki.test/ca.p7c"),
        (x509.AuthorityInformationAccessOID.OCSP, "http://ocsp.pki.test"),
    ]
    (dp,) = ext(cert, x509.CRLDistributionPoints).value
    assert [n.value for n in dp.full_name] == ["http://pki.test/ca.crl"]
    assert dp.reasons is None and dp.crl_issuer is None

    aki = ext(cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(ca.certificate, x509.SubjectKeyIdentifier).value.digest
    assert ext(cert, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(key.public_key())


def test_serial_numbers_are_random_and_at_least_64_bits(ca, pki):
    serials = [make(ca, pki)[0].serial_number for _ in range(8)]
    assert len(set(serials)) == 8
    assert all(s > 0 and s.bit_length() >= 64 and s.bit_length() <= 159 for s in serials)
    assert max(s.bit_length() for s in serials) > 150  # drawn from the full 159-bit range


def test_each_certificate_gets_a_fresh_uuid(ca, pki):
    piv = pki.piv_auth()
    uris = {ext(make(ca, pki, piv=piv)[0], x509.SubjectAlternativeName).value.get_values_for_type(x509.UniformResourceIdentifier)[0] for _ in range(5)}
    assert len(uris) == 5


def test_aal3_takes_the_hardware_policy_and_smart_card_logon_only_on_a_smart_card(ca, pki):
    card, *_ = make(ca, pki, aal="AAL3", target="smart-card")
    phone, *_ = make(ca, pki, aal="AAL3", target="hardware")
    for cert in (card, phone):
        assert [p.policy_identifier.dotted_string for p in ext(cert, x509.CertificatePolicies).value] == ["2.16.840.1.101.3.2.1.3.41"]
    assert list(ext(card, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH, ID_PKINIT_KP_CLIENT_AUTH, MS_SMART_CARD_LOGON]
    assert MS_SMART_CARD_LOGON not in ext(phone, x509.ExtendedKeyUsage).value


def test_aal3_refused_for_a_software_key(ca, pki):
    with pytest.raises(AssuranceMismatch) as err:
        make(ca, pki, aal="AAL3", target="software")
    assert err.value.code == "profile.aal_target"


def test_validity_is_three_years_at_most(ca, pki):
    cert, *_ = make(ca, pki, piv=pki.piv_auth(days_left=10 * 365))
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(days=1095)
    assert abs((cert.not_valid_before_utc - now()).total_seconds()) < 5


def test_validity_never_passes_the_piv_auth_certificate(ca, pki):
    piv = pki.piv_auth(days_left=200)
    cert, *_ = make(ca, pki, piv=piv)
    assert cert.not_valid_after_utc == piv.not_valid_after_utc


def test_configured_shorter_validity(ca, pki):
    short = ProfileSettings(ca_issuers_url="http://a.test/c", crl_url="http://a.test/l", max_validity_days=30)
    cert, *_ = make(ca, pki, settings=short)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(days=30)


def test_expired_piv_auth_certificate_refused(ca, pki):
    with pytest.raises(ValidityError) as err:
        make(ca, pki, piv=pki.piv_auth(days_left=-1, days_old=400))
    assert "PIV Authentication" in str(err.value)


@pytest.mark.parametrize("kind", ["P-256", "P-384", "RSA-2048", "RSA-3072"])
def test_allowed_subject_keys(ca, pki, kind):
    cert, *_ = make(ca, pki, key=new_key(kind))
    assert cert.public_key().key_size == {"P-256": 256, "P-384": 384, "RSA-2048": 2048, "RSA-3072": 3072}[kind]


@pytest.mark.parametrize("kind", ["P-521", "RSA-1024", "RSA-4096", "Ed25519"])
def test_other_subject_keys_refused(ca, pki, kind):
    key = ed25519.Ed25519PrivateKey.generate() if kind == "Ed25519" else new_key(kind)
    with pytest.raises(UnsupportedKey) as err:
        make(ca, pki, key=key)
    assert err.value.code == "csr.key_type"


def test_p384_ca_signs_with_sha384(pki):
    signer = PrivateKeySigner(ec.generate_private_key(ec.SECP384R1()))
    ca384 = IssuingCA(self_signed_ca_certificate(CA_NAME, signer), signer)
    cert, *_ = make(ca384, pki)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA384)
    cert.verify_directly_issued_by(ca384.certificate)


def test_validity_capped_by_the_ca_certificate(pki):
    signer = PrivateKeySigner(ec.generate_private_key(ec.SECP256R1()))
    short_ca = IssuingCA(self_signed_ca_certificate(CA_NAME, signer, days=100), signer)
    cert, *_ = make(short_ca, pki)
    assert cert.not_valid_after_utc == short_ca.certificate.not_valid_after_utc


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_validity_days": 1096},
        {"max_validity_days": 0},
        {"crl_url": "https://pki.test/ca.crl"},
        {"ca_issuers_url": "ldap://pki.test/ca"},
    ],
)
def test_profile_settings_refuse_out_of_profile_values(kwargs):
    base = {"ca_issuers_url": "http://pki.test/ca.p7c", "crl_url": "http://pki.test/ca.crl"}
    with pytest.raises(ProfileError):
        ProfileSettings(**{**base, **kwargs})


def test_target_kind_of_a_device_description():
    from station.terms import TargetKind

    assert TargetKind.of_device(hardware=True, smart_card=True) is TargetKind.SMART_CARD
    assert TargetKind.of_device(hardware=True, smart_card=False) is TargetKind.HARDWARE
    assert TargetKind.of_device(hardware=False, smart_card=False) is TargetKind.SOFTWARE
