"""Two stations, each with its own CA and audit key, sharing one PostgreSQL database."""

from __future__ import annotations

from cryptography import x509

from station.audit.log import key_fingerprint
from station.audit.trust import pin_key, pinned_keys
from station.audit.verify import verify_chain
from station.ca import ca_store
from station.home import StationHome
from station.service import revocation
from station.service.setup import InitOptions, initialize
from station.service.station import Station

from .ca_helpers import issue, new_pg_database


def test_two_stations_share_records_and_audit_chain(tmp_path, secret_service, postgres, trust_profile, pki):
    url = new_pg_database(postgres)
    stations = []
    for name in ("a", "b"):
        home = StationHome(tmp_path / name)
        initialize(home, InitOptions(trust_profile=trust_profile, db_url=url, checkpoint_every_events=2))
        stations.append(Station.open(home))
    a, b = stations
    try:
        from_a, *_ = issue(a, pki)
        from_b, *_ = issue(b, pki)
        revocation.revoke(b, from_a.serial, "affiliationChanged", actor="b-admin")  # any station may revoke
        crl_a = revocation.publish_crl(a, actor="a")
        crl_b = revocation.publish_crl(b, actor="b")
        assert crl_a.get_revoked_certificate_by_serial_number(from_a.certificate.serial_number) is not None
        assert len(crl_b) == 0  # B's CA did not issue it
        number = lambda crl: crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number  # noqa: E731
        assert number(crl_a) == number(crl_b) == 1
        assert {c.serial for c in revocation.list_credentials(a)} == {from_a.serial, from_b.serial}
        # one chain with checkpoints from both stations: the other station's key counts once pinned
        for st, other in ((a, b), (b, a)):
            with st.db.transaction() as s:
                before = verify_chain(s, ca_store.load_audit_public_key(st.home), pinned=pinned_keys(st.home))
            assert not before.ok and "does not trust" in before.first_bad.problem
            pin_key(st, key_fingerprint(ca_store.load_audit_public_key(other.home)), actor="admin")
        for st in (a, b):
            with st.db.transaction() as s:
                report = verify_chain(s, ca_store.load_audit_public_key(st.home), pinned=pinned_keys(st.home))
            assert report.ok, (report.findings, report.rows)
            assert report.checkpoints_verified >= 4
    finally:
        for st in stations:
            st.close()
