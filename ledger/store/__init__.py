"""Storage: one database per deployment, SQLite (WAL) by default, PostgreSQL by URL.

The schema lives in `models.py`; Alembic migrations under `migrations/` create and evolve it,
and `Store.open` brings any database up to the newest revision before use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from ledger.errors import StorageError
from ledger.store.models import Base, LogState

MIGRATIONS = Path(__file__).parent / "migrations"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL: readers never block the writer; NORMAL sync is durable across process crashes
    # (a power cut may lose the last transactions, never corrupt the file).
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def alembic_config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


# pg_advisory_xact_lock key of schema changes: b"fp-schema" as a number.
SCHEMA_LOCK = int.from_bytes(b"fp-schema", "big") & (2**63 - 1)


def take_turns(conn: Connection) -> None:
    """Processes opening one database at the same moment take turns: the first migrates and
    seeds it, the others then find it done. (SQLite: the first write takes the database.)"""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to `revision` (idempotent, safe to run from several processes)."""
    with engine.begin() as conn:
        take_turns(conn)
        command.upgrade(alembic_config(conn), revision)


class Store:
    """An engine plus the few whole-database operations the log and the CLI need."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, migrate_schema: bool = True) -> Store:
        """Connect to `url` and bring its schema up to date.

        Raises:
            StorageError: the database cannot be reached or migrated.
        """
        engine = make_engine(url)
        try:
            if migrate_schema:
                migrate(engine)
            with suppress(IntegrityError), engine.begin() as conn:  # seeded by another process
                take_turns(conn)
                if conn.execute(select(LogState.size).where(LogState.id == 1)).first() is None:
                    conn.execute(insert(LogState).values(id=1, size=0))
        except OperationalError as exc:
            engine.dispose()
            raise StorageError(f"cannot open database {engine.url!r}: {exc.orig}") from exc
        return cls(engine)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One atomic unit of work; database failures surface as StorageError."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StorageError(f"database error: {exc}") from exc

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StorageError(f"database error: {exc}") from exc

    def close(self) -> None:
        self.engine.dispose()


__all__ = ["Base", "Store", "make_engine", "migrate", "sqlite_url"]
