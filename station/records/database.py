"""Opening the records database: SQLite by default, PostgreSQL by URL; migrations on open.

SQLite runs in WAL mode with foreign keys on and a busy timeout, and every transaction starts
with ``BEGIN IMMEDIATE`` so that two writers queue instead of failing on a lock upgrade.
PostgreSQL URLs (``postgresql://…``) use psycopg 3; appends to the audit chain serialise on a
row lock (:mod:`station.audit.log`).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from station.errors import StationError

MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMA_HEAD = "0003"  # the newest migration (a test holds it equal to Alembic's head)
SQLITE_BUSY_TIMEOUT_MS = 10_000


class DatabaseError(StationError):
    code = "records.database"


def normalise_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise DatabaseError(
            f"unsupported database {parsed.drivername!r}",
            code="records.url",
            hint="use sqlite:///PATH or postgresql://user@host/db",
        )
    return parsed.render_as_string(hide_password=False)


def split_password(url: str) -> tuple[str, str | None]:
    """(URL without its password, the password): the password goes to the keyring, not the config."""
    parsed = make_url(url)
    if parsed.password is None:
        return url, None
    bare = URL.create(parsed.drivername, parsed.username, None, parsed.host, parsed.port, parsed.database, parsed.query)
    return bare.render_as_string(hide_password=False), str(parsed.password)


def with_password(url: str, password: str) -> str:
    return make_url(url).set(password=password).render_as_string(hide_password=False)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):  # noqa: ANN001
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn):  # noqa: ANN001
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url)
        _sqlite_pragmas(engine)
        return engine
    return create_engine(url, pool_pre_ping=True)


def schema_version(connection) -> str | None:  # noqa: ANN001
    """The database's migration revision; None for a database without the version table."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``. A database already at the head costs two queries and
    no Alembic import (that import alone is ~0.1 s of every command's start)."""
    with engine.begin() as connection:
        if revision == "head" and schema_version(connection) == SCHEMA_HEAD:
            return
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


@dataclass
class Database:
    engine: Engine
    sessions: sessionmaker[Session]

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed on success, rolled back on any exception."""
        with self.sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()


def open_database(url: str, *, run_migrations: bool = True) -> Database:
    engine = make_engine(url)
    try:
        if run_migrations:
            migrate(engine)
    except Exception as exc:
        engine.dispose()
        raise DatabaseError(f"cannot open or migrate the database: {exc}", hint="check --db / [database] url") from exc
    return Database(engine, sessionmaker(engine, expire_on_commit=False))
