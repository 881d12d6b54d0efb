"""Opening the records database: SQLite by default, PostgreSQL by URL; migrations on open.

SQLite runs in WAL mode with foreign keys on and a busy timeout (``[database]
busy_timeout_seconds``, 10 s by default), and every transaction starts with ``BEGIN
IMMEDIATE`` so that two writers queue instead of failing on a lock upgrade. A database that
stays locked past the timeout, or a full disk, is a :class:`SystemFailure` (exit code 3), not
a traceback.
PostgreSQL URLs (``postgresql://…``) use psycopg 3; appends to the audit chain serialise on a
row lock (:mod:`station.audit.log`).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from station.errors import StationError, SystemFailure
from station.home import make_private_file

MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMA_HEAD = "0004"  # the newest migration (a test holds it equal to Alembic's head)
SQLITE_BUSY_TIMEOUT_S = 10.0


class DatabaseError(StationError):
    class Code(str, Enum):
        DATABASE = "records.database"
        URL = "records.url"
        PERMISSIONS = "records.permissions"

    code = Code.DATABASE.value
    hint = "check --db or [database] url in station.toml"


def unavailable(exc: OperationalError) -> StationError:
    """The one-line error for a database that failed under the station (SQLite's and the
    server's own words, never the URL: it may carry a password)."""
    words = " ".join(str(exc.orig or exc).split())
    if "locked" in words or "busy" in words:
        return SystemFailure("the database is locked by another station command", code=SystemFailure.Code.DATABASE_LOCKED,
                             hint="wait until it ends (or stop it) and run this command again")
    if "unable to open" in words:
        return DatabaseError(f"cannot open the database file: {words}", code=DatabaseError.Code.URL,
                             hint="check that the folder of the sqlite:/// path exists and is writable")
    if "full" in words or "disk I/O" in words:
        return SystemFailure(f"the disk holding the database is full or failing: {words}", code=SystemFailure.Code.DISK_FULL,
                             hint="free some space (df shows it), check the disk and run the command again")
    return SystemFailure(f"the database failed: {words}", code=SystemFailure.Code.DATABASE_UNAVAILABLE,
                         hint="check that the database (file or server) is reachable, and --db or [database] url")


def normalise_url(url: str) -> str:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError("the database URL cannot be read", code=DatabaseError.Code.URL,
                            hint="use sqlite:///PATH or postgresql://user@host/db") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise DatabaseError(
            f"unsupported database {parsed.drivername!r}",
            code=DatabaseError.Code.URL,
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


def _sqlite_pragmas(engine: Engine, busy_timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):  # noqa: ANN001
        dbapi_connection.isolation_level = None  # the station sends BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.close()

    # Every transaction starts with BEGIN IMMEDIATE, sent by the dialect's begin hook, which
    # SQLAlchemy calls at each transaction's start and whose errors it wraps as a statement's
    # (a locked database is an OperationalError, as before): on the DBAPI connection, not as
    # a statement through a "begin" event (that is a Core execution per transaction, and any
    # engine event makes every statement look for listeners).
    engine.dialect.do_begin = _begin_immediate


def _begin_immediate(dbapi_connection) -> None:  # noqa: ANN001
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("BEGIN IMMEDIATE")
    finally:
        cursor.close()


def _private_sqlite_files(url: str) -> None:
    """The database file, made 0600 before SQLite opens it: SQLite creates its WAL and SHM
    files with the database file's mode, so all three are the owner's only, whatever the umask
    (the records hold argon2id hashes, FASC-Ns and UUIDs)."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.parent.is_dir():
        return  # SQLite says it cannot open the file
    try:
        make_private_file(path)
        for companion in ("-wal", "-shm", "-journal"):
            side = path.with_name(path.name + companion)
            if side.exists():
                os.chmod(side, 0o600)
    except OSError as exc:
        raise DatabaseError(f"cannot make the database {path} private: {exc.strerror}", code=DatabaseError.Code.PERMISSIONS,
                            hint="run the station as the owner of its database file") from None


def make_engine(url: str, *, busy_timeout: float = SQLITE_BUSY_TIMEOUT_S) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        _private_sqlite_files(url)
        engine = create_engine(url)
        _sqlite_pragmas(engine, busy_timeout)
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
        try:
            with self.sessions.begin() as session:
                yield session
        except OperationalError as exc:
            raise unavailable(exc) from exc

    def close(self) -> None:
        self.engine.dispose()


def open_database(url: str, *, run_migrations: bool = True, busy_timeout: float = SQLITE_BUSY_TIMEOUT_S) -> Database:
    """``busy_timeout``: seconds an SQLite command waits for another one's lock."""
    engine = make_engine(url, busy_timeout=busy_timeout)
    try:
        if run_migrations:
            migrate(engine)
    except OperationalError as exc:
        engine.dispose()
        raise unavailable(exc) from exc
    except Exception as exc:
        engine.dispose()
        raise DatabaseError(f"cannot open or migrate the database: {exc}") from exc
    return Database(engine, sessionmaker(engine, expire_on_commit=False))
