"""The EST service in process, with a throwaway CA and a station side played by a thread: the
self-test consults revocation, an AAL2 phone with a failed attestation still gets AAL2, the
service keeps serving after a client that never finishes its handshake, and it stops cleanly."""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from station.enrollment import tls
from station.enrollment.binding import BindingRegistry, Enrollment
from station.enrollment.qr import EnrollmentPayload
from station.enrollment.service import EnrollmentService, Hooks, Limits
from station.home import StationHome
from station.phone.client import PhoneError, PinnedEst, enroll

AAL2 = "2.16.840.1.101.3.2.1.3.40"


class Secrets(dict):
    put = dict.__setitem__
    get = dict.__getitem__


def make_ca():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "throwaway derived PIV CA")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1)).add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
            .sign(key, hashes.SHA256()))
    return key, cert


class Station:
    """The engine's side of one enrollment: certify the phone's key at once."""

    def __init__(self, service: EnrollmentService, ca_key, ca_cert, aal: str = "AAL2", *, other_key: bool = False):
        """``other_key``: a station gone wrong certifies a key that is not the phone's."""
        self.other_key = other_key
        self.events: list[tuple[str, bool]] = []  # (kind, ok) as the screens hear them
        self.enrollment = Enrollment(1, aal, on_event=lambda kind, detail, ok=True: self.events.append((kind, ok)))
        self.otp = service.registry.bind(self.enrollment)
        self.payload = EnrollmentPayload(service.base_url(self.enrollment.label), service.fingerprint, self.enrollment.user,
                                         self.otp, self.enrollment.expires)
        threading.Thread(target=self._certify, args=(ca_key, ca_cert), daemon=True).start()

    def _certify(self, ca_key, ca_cert) -> None:
        e = self.enrollment
        if not e.request_received.wait(30):
            return
        csr = x509.load_der_x509_csr(e.csr_der)
        now = dt.datetime.now(dt.timezone.utc)
        e.certificate = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "A")]))
                         .issuer_name(ca_cert.subject)
                         .public_key(ec.generate_private_key(ec.SECP256R1()).public_key() if self.other_key else csr.public_key()).serial_number(x509.random_serial_number())
                         .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=1))
                         .add_extension(x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(AAL2), None)]),
                                        False).sign(ca_key, hashes.SHA256()))
        e.policy = AAL2
        e.signal(e.delivered)


@pytest.fixture
def service_for(tmp_path):
    started = []

    def start(**hooks) -> tuple[EnrollmentService, object, x509.Certificate]:
        ca_key, ca_cert = make_ca()
        identity = tls.create(StationHome(tmp_path / f"home{len(started)}"), Secrets(), "127.0.0.1", "0000test")
        service = EnrollmentService(identity, ca_cert, registry=BindingRegistry(), hooks=Hooks(**hooks),
                                    limits=Limits(handshake_seconds=1.0, header_seconds=1.0)).start()
        started.append(service)
        return service, ca_key, ca_cert

    yield start
    for service in started:
        service.stop()


def test_the_self_test_fails_a_revoked_credential(service_for, tmp_path):
    service, ca_key, ca_cert = service_for(is_revoked=lambda serial: True)
    station = Station(service, ca_key, ca_cert)
    result = enroll(station.payload, pin="k9Pz4mQ1", store=tmp_path / "phone")
    assert result.selftest["passed"] is False and result.selftest["checks"]["not_revoked"] is False
    assert station.enrollment.selftest.passed is False
    assert station.events == [("enrolling", True), ("enrolled", True), ("activated", True), ("selftest", False)]


def test_an_aal2_phone_with_a_failed_attestation_still_enrolls_at_aal2(service_for, tmp_path):
    service, ca_key, ca_cert = service_for(verify_attestation=lambda chain, key, challenge: "not trusted")
    station = Station(service, ca_key, ca_cert, aal="AAL2")
    result = enroll(station.payload, pin="k9Pz4mQ1", store=tmp_path / "phone", test_attestation=True)
    assert result.policy_oid == AAL2 and result.selftest["passed"] is True
    assert "attestation" not in station.enrollment.attested and station.enrollment.attested["key"] == "P-256"


def test_aal3_with_an_untrusted_attestation_is_refused_and_audited(service_for, tmp_path):
    audited = []
    service, ca_key, ca_cert = service_for(verify_attestation=lambda chain, key, challenge: "no configured root",
                                           audit=lambda request_id, action, details: audited.append((action, details)))
    station = Station(service, ca_key, ca_cert, aal="AAL3")
    with pytest.raises(PhoneError, match="403"):
        enroll(station.payload, pin="k9Pz4mQ1", store=tmp_path / "phone", test_attestation=True)
    assert audited == [("enrollment.refused", {"reason": "aal3-needs-attestation", "label": station.enrollment.label,
                                               "detail": "no configured root"})]
    assert not station.enrollment.request_received.is_set() and station.events == [("refused", False)]


def test_a_silent_connection_is_dropped_and_others_are_served(service_for, tmp_path):
    service, ca_key, ca_cert = service_for()
    silent = socket.create_connection(("127.0.0.1", service.port))  # never starts its TLS handshake
    station = Station(service, ca_key, ca_cert)
    started = time.monotonic()
    assert enroll(station.payload, pin="k9Pz4mQ1", store=tmp_path / "phone").selftest["passed"] is True
    assert time.monotonic() - started < 5
    silent.settimeout(5)
    assert silent.recv(10) == b""  # closed by the handshake deadline
    silent.close()


def test_the_station_stops_waiting_and_the_phone_hears_why(service_for, tmp_path):
    service, ca_key, ca_cert = service_for()
    enrollment = Enrollment(2, "AAL2")
    otp = service.registry.bind(enrollment)
    payload = EnrollmentPayload(service.base_url(enrollment.label), service.fingerprint, enrollment.user, otp, enrollment.expires)
    threading.Thread(target=lambda: (enrollment.request_received.wait(30), enrollment.end("the registrar cancelled")),
                     daemon=True).start()
    with pytest.raises(PhoneError, match="503.*the registrar cancelled"):
        enroll(payload, pin="k9Pz4mQ1", store=tmp_path / "phone")


def test_activate_and_selftest_need_the_credential_of_their_own_enrollment(service_for, tmp_path):
    service, ca_key, ca_cert = service_for()
    first = Station(service, ca_key, ca_cert)
    enroll(first.payload, pin="k9Pz4mQ1", store=tmp_path / "first")
    second = Station(service, ca_key, ca_cert)  # another request, its phone not enrolled yet
    est = PinnedEst(second.payload)
    credential = (tmp_path / "first" / "cert.pem", tmp_path / "first" / "key.pem", "k9Pz4mQ1")
    for step in ("activate", "selftest"):  # a certificate of the same CA, but not this enrollment's
        status, _, reason = est.call("POST", step, b"{}", credential=credential)
        assert status == 403 and b"this enrollment issued" in reason
    assert not second.enrollment.activated.is_set() and second.enrollment.selftest is None
    assert est.call("POST", "activate", b"{}")[0] == 403  # no client certificate at all


def test_a_phone_target_without_its_enrollment_cannot_deliver_and_cannot_discard(service_for):
    from station.issuance.targets import TargetError, open_target
    from station.issuance.targets.phone import DeviceDidNotAnswer

    service, ca_key, ca_cert = service_for()
    target = open_target("phone", enrollment_service=lambda: service)
    assert target.describe().identity == "phone:token=phone;manufacturer=;model=;serial="
    with pytest.raises(DeviceDidNotAnswer):  # resumed after a crash: the phone's connection is gone
        target.install_certificate(ca_cert, [])
    with pytest.raises(TargetError) as refused:
        target.discard_key()
    assert refused.value.code == TargetError.Code.CANNOT_DISCARD.value
    with pytest.raises(TargetError, match="named just phone"):
        open_target("phone:serial=123")
    with pytest.raises(TargetError, match="no new code"):  # nothing waits for a phone yet
        target.new_code()


def test_an_expired_code_gets_401_and_an_audit_event(service_for, tmp_path):
    audited = []
    service, ca_key, ca_cert = service_for(audit=lambda request_id, action, details: audited.append((request_id, action,
                                                                                                   details["reason"])))
    service.registry.lifetime = 0.3
    station = Station(service, ca_key, ca_cert)
    time.sleep(0.4)
    with pytest.raises(PhoneError, match="HTTP 401.*expired"):
        enroll(station.payload, pin="k9Pz4mQ1", store=tmp_path / "phone")
    assert audited == [(1, "enrollment.refused", "expired")] and not station.enrollment.request_received.is_set()


def test_the_client_refuses_a_certificate_for_another_key_in_one_line(service_for, tmp_path):
    service, ca_key, ca_cert = service_for()
    station = Station(service, ca_key, ca_cert, other_key=True)
    with pytest.raises(PhoneError, match="no certificate for the phone's key"):
        enroll(station.payload, pin="k9Pz4mQ1", store=tmp_path / "phone")
    assert not (tmp_path / "phone").exists()  # nothing stored
