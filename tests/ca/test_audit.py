"""The audit trail: every kind of tampering is detected and named, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import sys
import json
import threading

import pytest
from sqlalchemy import select, text

from station.audit import chain
from station.audit.chain import SensitiveDataInEvent
from station.audit.export import export_jsonl
from station.audit.log import AuditLog, read_anchor
from station.audit.trust import pinned_keys
from station.audit.verify import verify_chain
from station.cli import main
from station.ca import ca_store
from station.records.models import AuditCheckpoint, AuditEvent

N_EXTRA = 9  # init writes events 1-2; these make 3..11, checkpoints every 3 events


@pytest.fixture
def trail(station):
    for i in range(N_EXTRA):
        with station.db.transaction() as s:
            station.audit.append(s, actor="tester", action="test.event", object_type="test", object_id=i, details={"n": i})
    return station


def verify(station):
    with station.db.transaction() as s:
        return verify_chain(s, ca_store.load_audit_public_key(station.home), read_anchor(station.home.audit_anchor),
                            pinned=pinned_keys(station.home))


def sql(station, *statements, **params):
    with station.db.transaction() as s:
        for stmt in statements:
            s.execute(text(stmt), params)


def row(station, seq):
    with station.db.transaction() as s:
        return s.execute(select(AuditEvent).where(AuditEvent.seq == seq)).scalar_one()


def move(station, seq_from, seq_to):
    sql(station, "UPDATE audit_events SET seq = :b WHERE seq = :a", a=seq_from, b=seq_to)


def test_intact_trail_verifies_with_checkpoints(trail):
    report = verify(trail)
    assert report.ok, report.findings
    assert report.events == 11
    with trail.db.transaction() as s:
        cps = s.execute(select(AuditCheckpoint.seq).order_by(AuditCheckpoint.seq)).scalars().all()
    assert 11 in cps and 8 in cps and 5 in cps
    assert report.checkpoints_verified == len(cps)


def test_edit_is_named(trail):
    sql(trail, "UPDATE audit_events SET details = :d WHERE seq = 6", d='{"n":99}')
    report = verify(trail)
    assert report.first_bad.seq == 6
    assert "altered" in report.first_bad.problem


def test_edit_of_the_actor_is_named(trail):
    sql(trail, "UPDATE audit_events SET actor = 'someone-else' WHERE seq = 9")
    assert verify(trail).first_bad.seq == 9


def test_rewritten_event_with_its_own_hash_recomputed_breaks_the_next_link(trail):
    """Event 6 edited and its own hash recomputed: every event still matches its own hash,
    and the checkpoints at 8 and 11 and the head still match; only event 7's prev_hash,
    which names the old event 6, gives the rewrite away."""
    old = row(trail, 6)
    new = chain.event_hash(6, old.occurred_at, old.actor, old.action, old.object_type, old.object_id, '{"n":99}', old.prev_hash)
    sql(trail, "UPDATE audit_events SET details = :d, hash = :h WHERE seq = 6", d='{"n":99}', h=new)
    report = verify(trail)
    assert report.first_bad.seq == 6
    assert "rewritten" in report.first_bad.problem


def test_deletion_is_named(trail):
    sql(trail, "DELETE FROM audit_events WHERE seq = 6")
    report = verify(trail)
    assert report.first_bad.seq == 6
    assert "missing" in report.first_bad.problem


def test_deletion_with_renumbering_is_named(trail):
    sql(trail, "DELETE FROM audit_events WHERE seq = 6")
    for seq in range(7, 12):
        move(trail, seq, seq - 1)
    report = verify(trail)
    assert report.first_bad.seq == 6
    assert "deleted" in report.first_bad.problem


def test_insertion_is_named(trail):
    for seq in range(11, 5, -1):
        move(trail, seq, seq + 1)
    prev = row(trail, 5)
    forged = dict(seq=6, occurred_at=chain.timestamp(), actor="intruder", action="credential.issued", object_type="credential",
                  object_id="ff", details="{}", prev_hash=prev.hash)  # fmt: skip
    forged["hash"] = chain.event_hash(**{k: forged[k] for k in ("seq", "occurred_at", "actor", "action", "object_type", "object_id", "details", "prev_hash")})
    sql(
        trail,
        "INSERT INTO audit_events (seq, occurred_at, actor, action, object_type, object_id, details, prev_hash, hash) "
        "VALUES (:seq, :occurred_at, :actor, :action, :object_type, :object_id, :details, :prev_hash, :hash)",
        **forged,
    )
    report = verify(trail)
    assert report.first_bad.seq == 6
    assert "inserted" in report.first_bad.problem


def test_reordering_is_named(trail):
    move(trail, 6, -1)
    move(trail, 7, 6)
    move(trail, -1, 7)
    report = verify(trail)
    assert report.first_bad.seq == 6
    assert "reordered" in report.first_bad.problem


def test_rewritten_chain_caught_by_signed_checkpoints(trail):
    """An intruder who knows the hashing rule edits event 7 and recomputes every hash after it."""
    sql(trail, "UPDATE audit_events SET details = :d WHERE seq = 7", d='{"n":1000}')
    prev = row(trail, 6).hash
    for seq in range(7, 12):
        ev = row(trail, seq)
        new = chain.event_hash(ev.seq, ev.occurred_at, ev.actor, ev.action, ev.object_type, ev.object_id, ev.details, prev)
        sql(trail, "UPDATE audit_events SET prev_hash = :p, hash = :h WHERE seq = :s", p=prev, h=new, s=seq)
        prev = new
    sql(trail, "UPDATE audit_head SET hash = :h WHERE id = 1", h=prev)
    report = verify(trail)
    assert not report.ok
    # the last checkpoint that still matches is at 5, so the rewrite is reported from event 6
    assert report.first_bad.seq == 6
    assert "rewritten" in report.first_bad.problem


def test_truncation_caught_by_checkpoint(trail):
    last_kept = row(trail, 9)
    sql(trail, "DELETE FROM audit_events WHERE seq > 9", "UPDATE audit_head SET seq = 9, hash = :h WHERE id = 1", h=last_kept.hash)
    report = verify(trail)
    assert report.first_bad.seq == 10
    assert "missing" in report.first_bad.problem


def test_tail_deletion_caught_by_head(trail):
    sql(trail, "DELETE FROM audit_checkpoints WHERE seq > 9", "DELETE FROM audit_events WHERE seq > 9")
    report = verify(trail)
    assert report.first_bad.seq == 10


def test_anchor_follows_the_latest_committed_checkpoint(trail):
    anchor = read_anchor(trail.home.audit_anchor)
    assert anchor["seq"] == 11 and anchor["head_hash"] == row(trail, 11).hash


def test_rewrite_with_checkpoints_deleted_caught_by_the_anchor(trail):
    """Delete every checkpoint, then edit and re-hash: only the anchor in the home still knows."""
    sql(trail, "DELETE FROM audit_checkpoints")
    sql(trail, "UPDATE audit_events SET details = :d WHERE seq = 7", d='{"n":1000}')
    prev = row(trail, 6).hash
    for seq in range(7, 12):
        ev = row(trail, seq)
        new = chain.event_hash(ev.seq, ev.occurred_at, ev.actor, ev.action, ev.object_type, ev.object_id, ev.details, prev)
        sql(trail, "UPDATE audit_events SET prev_hash = :p, hash = :h WHERE seq = :s", p=prev, h=new, s=seq)
        prev = new
    sql(trail, "UPDATE audit_head SET hash = :h WHERE id = 1", h=prev)
    with trail.db.transaction() as s:
        assert verify_chain(s, ca_store.load_audit_public_key(trail.home)).ok  # what the database alone shows
    report = verify(trail)
    assert not report.ok
    assert report.first_bad.seq == 11 and "gone from the database" in report.first_bad.problem


def test_rolled_back_transaction_leaves_the_anchor_alone(trail):
    before = read_anchor(trail.home.audit_anchor)
    with pytest.raises(RuntimeError), trail.db.transaction() as s:
        for i in range(5):  # enough to sign a checkpoint inside the transaction
            trail.audit.append(s, actor="t", action="test.rollback", object_type="t", object_id=i)
        raise RuntimeError("abort")
    assert read_anchor(trail.home.audit_anchor) == before
    assert verify(trail).ok


def test_forged_checkpoint_signature(trail):
    with trail.db.transaction() as s:
        cp = s.execute(select(AuditCheckpoint).where(AuditCheckpoint.seq == 8)).scalar_one()
        cp.signature = bytes(reversed(cp.signature))
    report = verify(trail)
    assert not report.ok
    assert "bad signature" in report.first_bad.problem


def test_no_secret_enters_an_event(station):
    with station.db.transaction() as s:
        before = s.execute(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1)).scalar_one()
    for details in ({"pin": "123456"}, {"new_PIN": "1"}, {"admin_password": "x"}, {"ca_passphrase": "x"},
                    {"nested": {"private_key": "x"}}, {"note": "-----BEGIN PRIVATE KEY-----\nMIIB"}, {"puk": "1"}):  # fmt: skip
        with pytest.raises(SensitiveDataInEvent), station.db.transaction() as s:
            station.audit.append(s, actor="t", action="x", object_type="t", object_id=1, details=details)
    with station.db.transaction() as s:
        assert s.execute(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1)).scalar_one() == before


def test_concurrent_appenders_keep_one_chain(station):
    errors = []

    def worker(name):
        try:
            for i in range(10):
                with station.db.transaction() as s:
                    station.audit.append(s, actor=name, action="test.concurrent", object_type="t", object_id=i)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = verify(station)
    assert report.ok, report.findings
    assert report.events == 2 + 40


def test_export_jsonl_recomputes(trail):
    out = io.StringIO()
    assert export_jsonl(trail.db.sessions(), out) == 11
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    events = [line for line in lines if line["record"] == "event"]
    assert [e["seq"] for e in events] == list(range(1, 12))
    prev = chain.GENESIS
    for e in events:
        assert e["prev_hash"] == prev
        assert chain.event_hash(e["seq"], e["occurred_at"], e["actor"], e["action"], e["object_type"], e["object_id"], e["details"], prev) == e["hash"]
        prev = e["hash"]
    assert any(line["record"] == "checkpoint" and line["seq"] == 11 for line in lines)


def test_cli_verify_names_the_first_bad_event(trail, capsys):
    home = str(trail.home.root)
    db = trail.db.engine.url.render_as_string(hide_password=False)
    assert main(["audit", "verify", "--home", home, "--db", db]) == 0
    assert "intact: 11 events" in capsys.readouterr().out
    sql(trail, "UPDATE audit_events SET action = 'nothing.happened' WHERE seq = 4")
    assert main(["audit", "verify", "--home", home, "--db", db]) == 1
    assert "first bad event 4" in capsys.readouterr().err
    assert main(["audit", "export", "--format", "jsonl", "--home", home, "--db", db]) == 0
    assert capsys.readouterr().out.count('"record": "event"') == 11


def checkpoint_seqs(station) -> list[int]:
    with station.db.transaction() as s:
        return s.execute(select(AuditCheckpoint.seq).order_by(AuditCheckpoint.seq)).scalars().all()


def append(station, log, n, action="test.more"):
    for i in range(n):
        with station.db.transaction() as s:
            log.append(s, actor="t", action=action, object_type="t", object_id=i)


def test_a_rolled_back_checkpoint_is_not_taken_for_signed(trail):
    """The log remembers the newest checkpoint to spare a query per event, but only once committed."""
    assert checkpoint_seqs(trail)[-1] == 11 and trail.audit.checkpoint_every_events == 3
    with pytest.raises(RuntimeError), trail.db.transaction() as s:
        for i in range(3):  # 12, 13, 14: signs a checkpoint at 14, then everything rolls back
            trail.audit.append(s, actor="t", action="test.rollback", object_type="t", object_id=i)
        assert checkpoint_seqs_in(s)[-1] == 14
        raise RuntimeError("abort")
    append(trail, trail.audit, 3)  # 12, 13, 14 again, committed this time
    assert checkpoint_seqs(trail)[-2:] == [11, 14]
    assert verify(trail).ok


def checkpoint_seqs_in(session) -> list[int]:
    return session.execute(select(AuditCheckpoint.seq).order_by(AuditCheckpoint.seq)).scalars().all()


def test_a_checkpoint_signed_by_another_station_counts(trail):
    other = AuditLog(station_id="other", signer=trail.audit.signer, checkpoint_every_events=3)
    append(trail, trail.audit, 1)  # 12: this log now knows the checkpoint at 11
    append(trail, other, 2)  # 13, 14: the other log signs at 14
    append(trail, trail.audit, 2)  # 15, 16: due by what this log knew (11); the database says 14
    append(trail, trail.audit, 1)  # 17: three after 14
    assert checkpoint_seqs(trail)[-3:] == [11, 14, 17]
    assert verify(trail).ok


def test_issuance_and_revocation_end_with_a_signed_checkpoint(station, pki):
    """Not only every N events: what a credential and a CRL rest on is never in the unsigned tail."""
    from .ca_helpers import issue
    from station.service import revocation

    station.audit.checkpoint_every_events = 1000  # the interval alone would sign nothing here
    issued, *_ = issue(station, pki)
    with station.db.transaction() as s:
        head = s.execute(select(AuditEvent.seq, AuditEvent.action).order_by(AuditEvent.seq.desc()).limit(1)).one()
    assert head.action == "credential.issued" and checkpoint_seqs(station)[-1] == head.seq
    revocation.revoke(station, issued.serial, "keyCompromise", actor="admin")
    assert checkpoint_seqs(station)[-1] == head.seq + 1
    assert read_anchor(station.home.audit_anchor)["seq"] == head.seq + 1


def test_an_appended_key_cannot_vouch_for_a_truncated_chain(trail):
    """Truncate the chain, register a key of one's own in the records with a well-formed event,
    and sign the new head with it: verify still fails (only keys pinned in the home count)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from station.audit.log import key_fingerprint

    sql(trail, "DELETE FROM audit_checkpoints WHERE seq > 8", "DELETE FROM audit_events WHERE seq > 8")
    intruder = ec.generate_private_key(ec.SECP256R1())
    fp = key_fingerprint(intruder.public_key())
    pem = intruder.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    sql(trail, "INSERT INTO audit_keys (fingerprint, station_id, public_key_pem, registered_at) VALUES (:f, 'x', :p, :t)",
        f=fp, p=pem, t=chain.timestamp()[:26].replace("T", " "))
    fields = dict(seq=9, occurred_at=chain.timestamp(), actor="system", action="audit.key_registered", object_type="audit_key",
                  object_id=fp, details=chain.canonical_json({"key_sha256": fp, "station_id": "x"}), prev_hash=row(trail, 8).hash)
    fields["hash"] = chain.event_hash(**fields)
    sql(trail, "INSERT INTO audit_events (seq, occurred_at, actor, action, object_type, object_id, details, prev_hash, hash) "
        "VALUES (:seq, :occurred_at, :actor, :action, :object_type, :object_id, :details, :prev_hash, :hash)", **fields)
    sql(trail, "UPDATE audit_head SET seq = 9, hash = :h WHERE id = 1", h=fields["hash"])
    signed_at = chain.timestamp()
    signature = intruder.sign(chain.checkpoint_message(9, fields["hash"], signed_at), ec.ECDSA(hashes.SHA256()))
    with trail.db.transaction() as s:
        s.add(AuditCheckpoint(seq=9, head_hash=fields["hash"], signed_at=signed_at, key_fingerprint=fp, signature=signature))
    with trail.db.transaction() as s:  # the database alone, as a station without this anchor sees it
        report = verify_chain(s, ca_store.load_audit_public_key(trail.home))
    assert not report.ok
    assert report.first_bad.seq == 9 and "does not trust" in report.first_bad.problem and fp in report.first_bad.problem


def test_cli_trust_key_pins_a_registered_key_only(trail, capsys, tmp_path, monkeypatch):
    """`audit trust-key`: a signed-in administrator pins a key another station registered in the
    home (audited); a fingerprint the records do not register is refused in one line, and so is
    an actor who does not sign in as an administrator."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from station.audit.log import key_fingerprint
    from station.ca.signer import PrivateKeySigner
    from station.issuance.signin import hash_password
    from station.terms import AuthMethod, Role
    from station.service.operators import add_operator

    for identity, role in (("admin", Role.ADMINISTRATOR), ("aud", Role.AUDITOR)):
        add_operator(trail, identity, display_name=identity, roles=[role], auth_method=AuthMethod.PASSWORD,
                     auth_reference=hash_password(f"{identity} passphrase 1"), actor="test")
    config = trail.home.config_path.read_text()
    trail.home.config_path.write_text(config.replace("allow_passwords = false", "allow_passwords = true"))

    def as_operator(identity):
        monkeypatch.setattr(sys, "stdin", io.StringIO(f"{identity} passphrase 1\n"))
        return ["--operator", identity]

    other = AuditLog(station_id="other", signer=PrivateKeySigner(ec.generate_private_key(ec.SECP256R1())))
    with trail.db.transaction() as s:
        fp = other.register_key(s)
    home, db = str(trail.home.root), trail.db.engine.url.render_as_string(hide_password=False)
    assert "does not trust" in verify(trail).first_bad.problem  # its registration was signed with it
    capsys.readouterr()
    assert main(["audit", "trust-key", "ab" * 10, "--home", home, "--db", db, *as_operator("admin")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no registered audit key starts with" in err
    assert main(["audit", "trust-key", fp[:20], "--home", home, "--db", db]) == 1  # nobody signed in
    assert main(["audit", "trust-key", fp[:20], "--home", home, "--db", db, *as_operator("aud")]) == 1  # not an administrator
    assert "does not hold the administrator role" in capsys.readouterr().err and not pinned_keys(trail.home)
    assert main(["audit", "trust-key", fp[:20], "--home", home, "--db", db, *as_operator("admin")]) == 0
    assert list(pinned_keys(trail.home)) == [fp] and key_fingerprint(pinned_keys(trail.home)[fp]) == fp
    with trail.db.transaction() as s:
        last = s.execute(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).scalar_one()
    assert (last.action, last.actor, last.object_id) == ("audit.key_trusted", "admin", fp)
    assert verify(trail).ok


def test_concurrent_anchor_writes_neither_fail_nor_move_it_back(tmp_path):
    """Transactions of one station commit their checkpoints concurrently (threads, processes):
    every anchor write succeeds and the newest checkpoint wins, whatever the commit order."""
    from station.audit.log import write_anchor

    path, errors = tmp_path / "audit" / "anchor.json", []

    def writer(k):
        for i in range(40):
            try:
                write_anchor(path, {"seq": i * 8 + k, "head_hash": "h", "signed_at": "t", "key_sha256": "k"})
            except OSError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert read_anchor(path)["seq"] == 39 * 8 + 7
    write_anchor(path, {"seq": 5, "head_hash": "h", "signed_at": "t", "key_sha256": "k"})  # committed late: ignored
    assert read_anchor(path)["seq"] == 39 * 8 + 7
