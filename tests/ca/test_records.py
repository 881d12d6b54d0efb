"""Records: migrations give exactly the models' schema; SQLite settings; PostgreSQL by URL."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from station.records.database import (
    MIGRATIONS,
    SCHEMA_HEAD,
    DatabaseError,
    normalise_url,
    open_database,
    schema_version,
    split_password,
    with_password,
)
from station.records.models import Applicant, AuditHead, Base, Credential, UTCDateTime


def test_migrations_match_the_models(db_url):
    db = open_database(db_url)
    try:
        with db.engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        # UTCDateTime is a DateTime underneath: the migration spells it as DateTime
        diffs = [d for d in diffs if not (d[0] == "modify_type" and isinstance(d[-1], UTCDateTime))]
        assert diffs == []
        tables = set(inspect(db.engine).get_table_names())
        assert {"operators", "applicants", "piv_auth_certificates", "requests", "credentials", "audit_events", "audit_checkpoints"} <= tables
        with db.transaction() as s:
            head = s.get(AuditHead, 1)
            assert (head.seq, head.hash) == (0, "0" * 64)
    finally:
        db.close()


def test_the_schema_head_the_code_checks_is_alembics_head():
    """``open_database`` compares the version table with SCHEMA_HEAD instead of loading Alembic;
    a new migration without a new SCHEMA_HEAD would never run on existing databases."""
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [SCHEMA_HEAD]


def alembic_config():
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def test_an_older_schema_is_migrated_on_open(db_url):
    from alembic import command

    db = open_database(db_url)
    with db.engine.begin() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
        assert schema_version(conn) == "0001"
        assert "card_uuid" not in {c["name"] for c in inspect(conn).get_columns("operators")}
    db.close()
    db = open_database(db_url)
    try:
        assert "card_uuid" in {c["name"] for c in inspect(db.engine).get_columns("operators")}
        with db.engine.connect() as conn:
            assert schema_version(conn) == SCHEMA_HEAD
    finally:
        db.close()


def test_migrating_twice_is_harmless(db_url):
    open_database(db_url).close()
    db = open_database(db_url)
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == SCHEMA_HEAD  # the newest migration
    db.close()


def test_foreign_keys_are_enforced(db_url):
    db = open_database(db_url)
    try:
        with pytest.raises(IntegrityError), db.transaction() as s:
            now = dt.datetime.now(dt.timezone.utc)
            s.add(Credential(request_id=4242, serial="1", certificate=b"x", policy="p", subject="s", san_uuid="u",
                             public_key_sha256="h", piv_auth_certificate_id=4242, not_before=now, not_after=now))  # fmt: skip
    finally:
        db.close()


def test_times_come_back_as_utc(db_url):
    db = open_database(db_url)
    try:
        when = dt.datetime(2026, 5, 1, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=-4)))
        with db.transaction() as s:
            s.add(Applicant(name="A", created_at=when))
        with db.transaction() as s:
            got = s.execute(select(Applicant.created_at)).scalar_one()
        assert got == when and got.tzinfo == dt.timezone.utc and got.hour == 16
    finally:
        db.close()


def test_sqlite_runs_wal_with_foreign_keys_and_busy_timeout(tmp_path):
    db = open_database(f"sqlite:///{tmp_path / 's.db'}")
    try:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    finally:
        db.close()


def test_database_urls():
    assert normalise_url("postgresql://u@h:5/db").startswith("postgresql+psycopg://")
    assert normalise_url("sqlite:////x/y.db") == "sqlite:////x/y.db"
    with pytest.raises(DatabaseError):
        normalise_url("mysql://u@h/db")
    assert split_password("postgresql://u:p%40w@h:5/db?sslmode=require") == ("postgresql://u@h:5/db?sslmode=require", "p@w")
    assert split_password("sqlite:////x.db") == ("sqlite:////x.db", None)
    assert with_password("postgresql://u@h/db", "p@w") == "postgresql://u:p%40w@h/db"

