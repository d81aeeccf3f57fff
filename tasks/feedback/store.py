"""The feedback database (SQLite by default, Postgres by URL): feedback items and the retrain batches that claim them."""
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    JSON, Column, Connection, DateTime, ForeignKey, Integer, MetaData, String, Table, Text, create_engine, event, func,
    insert, select, update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError

from loraflow.schemas.feedback import FeedbackIn
from loraflow.tasks.common.errors import LoraflowError

PENDING_KINDS = ("correction", "badcase")

metadata = MetaData()

feedback = Table(
    "feedback", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("idempotency_key", String(200), unique=True),
    Column("request_hash", String(64), nullable=False),
    Column("kind", String(16), nullable=False, index=True),
    Column("messages", JSON, nullable=False),
    Column("output", Text, nullable=False),
    Column("rating", String(8), nullable=False),
    Column("correction", Text),
    Column("model_version", String(200), nullable=False),
    Column("timestamp", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, index=True),
    Column("meta", JSON, nullable=False),
    Column("batch_id", String(64), ForeignKey("retrain_batches.id"), index=True),
    Column("consumed_at", DateTime(timezone=True)),
)

retrain_batches = Table(
    "retrain_batches", metadata,
    Column("id", String(64), primary_key=True),
    # sha256 of the sorted feedback ids: the same set can never form two batches.
    Column("batch_key", String(64), nullable=False, unique=True),
    Column("reason", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("feedback_count", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("flow_run_id", String(64)),
    Column("error", Text),
    Column("exported_at", DateTime(timezone=True)),
)


class IdempotencyConflict(Exception):
    """An Idempotency-Key was reused with a different request body."""


class _LostClaim(Exception):
    """Raised inside a claim transaction to roll it back when another claim took some of its rows."""


DATABASE_URL_ENV = "LORAFLOW_FEEDBACK_DATABASE_URL"


def default_database_url() -> str:
    """$LORAFLOW_FEEDBACK_DATABASE_URL, else SQLite under the loraflow home ($LORAFLOW_HOME/feedback.db)."""
    from loraflow.tasks.common.settings import loraflow_home

    # One variable that both the API process and the retrain worker read, so they always share one database.
    return os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{loraflow_home() / 'feedback.db'}"


def _utc(value: datetime | None) -> datetime | None:
    # SQLite drops the zone on the way back; everything is stored in UTC, so naive means UTC.
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _rating_from_db(raw: str) -> str | int:
    return int(raw) if raw.isdigit() else raw


def batch_key(feedback_ids: list[str]) -> str:
    """The identity of a batch: sha256 of its sorted feedback ids."""
    return hashlib.sha256("\n".join(sorted(feedback_ids)).encode()).hexdigest()


class FeedbackStore:
    """Feedback rows and retrain batches in one SQL database; safe for concurrent writers."""

    def __init__(self, database_url: str | None = None):
        self.url = database_url or default_database_url()
        try:
            url = make_url(self.url)
        except ArgumentError:
            raise LoraflowError(f"feedback database URL {self.url!r} is not a SQLAlchemy URL; use e.g. sqlite:///path/feedback.db or postgresql+psycopg2://user@host/db") from None
        self.is_sqlite = url.get_backend_name() == "sqlite"
        where = url.render_as_string(hide_password=True)
        if self.is_sqlite and url.database and url.database != ":memory:":
            try:
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise LoraflowError(f"cannot create the folder of the feedback database {where} ({error.strerror}: "
                                    f"{error.filename}); check feedback.database_url or --database-url") from None
        kwargs = {"connect_args": {"timeout": 30}} if self.is_sqlite else {"pool_pre_ping": True}
        try:
            self.engine = create_engine(url, **kwargs)
        except ArgumentError as error:  # NoSuchModuleError too: an unknown dialect or a driver that is not installed
            raise LoraflowError(f"feedback database URL {where}: {error}; use e.g. sqlite:///path/feedback.db or "
                                "postgresql+psycopg2://user@host/db (check feedback.database_url or --database-url)") from None
        if self.is_sqlite:
            self._configure_sqlite()
        try:
            metadata.create_all(self.engine)
        except OperationalError as error:
            raise LoraflowError(f"cannot open the feedback database {url.render_as_string(hide_password=True)} ({error.orig}); check feedback.database_url or --database-url") from None

    def _configure_sqlite(self) -> None:
        @event.listens_for(self.engine, "connect")
        def _connect(dbapi_connection, _record):
            # Take BEGIN away from the sqlite3 driver so a write transaction can lock the file up front.
            dbapi_connection.isolation_level = None
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")
            dbapi_connection.execute("PRAGMA foreign_keys=ON")

        @event.listens_for(self.engine, "begin")
        def _begin(conn):
            # IMMEDIATE takes the write lock at BEGIN: no read-then-write upgrade can fail half way.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            yield conn

    def add(self, item: FeedbackIn, idempotency_key: str | None = None) -> tuple[dict, bool]:
        """Store one feedback item; returns (row, created). A retried key returns the first row; raises IdempotencyConflict on a different body."""
        body = item.model_dump(mode="json", exclude={"timestamp"} if item.timestamp is None else set())
        request_hash = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        if idempotency_key is not None:
            existing = self._by_key(idempotency_key)
            if existing is not None:
                return self._check_replay(existing, request_hash), False
        now = datetime.now(UTC)
        row = {
            "id": str(uuid.uuid4()), "idempotency_key": idempotency_key, "request_hash": request_hash, "kind": item.kind,
            "messages": [m.model_dump() for m in item.messages], "output": item.output, "rating": str(item.rating),
            "correction": item.correction, "model_version": item.model_version,
            "timestamp": _utc(item.timestamp) or now, "received_at": now, "meta": item.metadata,
        }
        try:
            with self._write() as conn:
                conn.execute(insert(feedback).values(**row))
        except IntegrityError:
            # A concurrent retry with the same key won the insert.
            existing = self._by_key(idempotency_key) if idempotency_key is not None else None
            if existing is None:
                raise
            return self._check_replay(existing, request_hash), False
        return self._row_out({**row, "batch_id": None, "consumed_at": None}), True

    def _by_key(self, key: str) -> dict | None:
        with self.engine.connect() as conn:
            found = conn.execute(select(feedback).where(feedback.c.idempotency_key == key)).mappings().first()
        return dict(found) if found else None

    def _check_replay(self, existing: dict, request_hash: str) -> dict:
        if existing["request_hash"] != request_hash:
            raise IdempotencyConflict(existing["id"])
        return self._row_out(existing)

    @staticmethod
    def _row_out(row: dict) -> dict:
        return {
            "id": row["id"], "kind": row["kind"], "messages": row["messages"], "output": row["output"],
            "rating": _rating_from_db(row["rating"]), "correction": row["correction"], "model_version": row["model_version"],
            "timestamp": _utc(row["timestamp"]), "received_at": _utc(row["received_at"]), "metadata": row["meta"],
            "batch_id": row["batch_id"],
        }

    def list_feedback(self, since: datetime | None = None, kind: str | None = None, limit: int | None = 100, offset: int = 0) -> tuple[list[dict], int]:
        """Feedback received at or after `since` (oldest first) and the total matching count."""
        conditions = []
        if since is not None:
            conditions.append(feedback.c.received_at >= _utc(since))
        if kind is not None:
            conditions.append(feedback.c.kind == kind)
        query = select(feedback).where(*conditions).order_by(feedback.c.seq).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(feedback).where(*conditions)).scalar_one()
            rows = [self._row_out(dict(r)) for r in conn.execute(query).mappings()]
        return rows, total

    def count(self) -> int:
        """All stored feedback items."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(feedback)).scalar_one()

    def pending_count(self) -> int:
        """Badcases and corrections not yet taken by a retrain batch."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(feedback).where(*_pending())).scalar_one()

    def claim_batch(self, reason: str, min_count: int = 1) -> dict | None:
        """Atomically move all pending badcases/corrections into a new batch; None when fewer than min_count or another claim won."""
        try:
            with self._write() as conn:
                ids = list(conn.execute(select(feedback.c.id).where(*_pending()).order_by(feedback.c.seq)).scalars())
                if len(ids) < max(min_count, 1):
                    return None
                now = datetime.now(UTC)
                key = batch_key(ids)
                batch = {"id": f"fb-{now:%Y%m%d%H%M%S}-{key[:10]}", "batch_key": key, "reason": reason, "status": "created",
                         "feedback_count": len(ids), "created_at": now}
                conn.execute(insert(retrain_batches).values(**batch))
                # On Postgres a concurrent claim may have taken some rows since the select; the count shows it.
                claimed = conn.execute(
                    update(feedback).where(feedback.c.id.in_(ids), feedback.c.batch_id.is_(None)).values(batch_id=batch["id"])
                ).rowcount
                if claimed != len(ids):
                    raise _LostClaim
        except (IntegrityError, _LostClaim):
            return None  # a concurrent request claimed the same (or an overlapping) set first
        return {**batch, "feedback_ids": ids, "flow_run_id": None, "error": None}

    def get_batch(self, batch_id: str) -> dict | None:
        """A batch row with its feedback ids, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(retrain_batches).where(retrain_batches.c.id == batch_id)).mappings().first()
            if row is None:
                return None
            ids = list(conn.execute(select(feedback.c.id).where(feedback.c.batch_id == batch_id).order_by(feedback.c.seq)).scalars())
        return {**dict(row), "created_at": _utc(row["created_at"]), "feedback_ids": ids}

    def list_batches(self) -> list[dict]:
        """All batches, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(retrain_batches).order_by(retrain_batches.c.created_at)).mappings().all()
        return [{**dict(r), "created_at": _utc(r["created_at"])} for r in rows]

    def reopen_failed_batch(self, batch_id: str) -> bool:
        """Move a batch whose trigger failed back to `created` so it can be triggered again; False if it was not failed."""
        with self._write() as conn:
            changed = conn.execute(
                update(retrain_batches).where(retrain_batches.c.id == batch_id, retrain_batches.c.status == "trigger_failed")
                .values(status="created", error=None)
            ).rowcount
        return changed == 1

    def record_trigger(self, batch_id: str, flow_run_id: str | None = None, error: str | None = None) -> None:
        """Record the started flow run (status `triggered`) or the trigger's error (status `trigger_failed`)."""
        status = "trigger_failed" if error is not None else "triggered"
        with self._write() as conn:
            conn.execute(update(retrain_batches).where(retrain_batches.c.id == batch_id)
                         .values(status=status, flow_run_id=flow_run_id, error=error))

    def batch_rows(self, batch_id: str) -> list[dict]:
        """The feedback items of a batch, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(feedback).where(feedback.c.batch_id == batch_id).order_by(feedback.c.seq)).mappings()
            return [self._row_out(dict(r)) for r in rows]

    def mark_exported(self, batch_id: str) -> None:
        """Stamp the batch and its items as consumed by an export (kept on re-export)."""
        now = datetime.now(UTC)
        with self._write() as conn:
            conn.execute(update(feedback).where(feedback.c.batch_id == batch_id, feedback.c.consumed_at.is_(None)).values(consumed_at=now))
            conn.execute(update(retrain_batches).where(retrain_batches.c.id == batch_id, retrain_batches.c.exported_at.is_(None))
                         .values(exported_at=now))

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


def _pending():
    return (feedback.c.batch_id.is_(None), feedback.c.kind.in_(PENDING_KINDS))
