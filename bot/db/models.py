"""SQLAlchemy models. Every change here needs an Alembic revision in ``migrations/``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class CommandRun(Base):
    """One request through the pipeline: who asked what, where, and how it ended."""

    __tablename__ = "command_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(32), unique=True)
    source: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(64))
    team_id: Mapped[str | None] = mapped_column(String(32))
    channel_id: Mapped[str | None] = mapped_column(String(32))
    command: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    target: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_command_runs_started_at", "started_at"),)


class AuditEvent(Base):
    """Append-only and hash-chained: ``hash`` covers the row and the previous row's hash.

    ``seq`` and ``prev_hash`` are unique, so two writers racing for the same place in the
    chain cannot both succeed: the loser retries on top of the winner.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    request_id: Mapped[str | None] = mapped_column(String(32), index=True)
    source: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    team_id: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(255), index=True)
    detail: Mapped[dict[str, object]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class ActionPlan(Base):
    """A stored destructive action: the exact messages, who asked, and where it stands.

    ``status`` moves only by conditional writes (``UPDATE ... WHERE status = ...``):
    pending -> approved | denied | expired; approved -> executing -> done | failed | unknown.
    ``items`` holds each queue ID with the arrival time, sender and queue it had when the
    plan was made; ``plan_hash`` covers all of it.
    """

    __tablename__ = "action_plans"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(32))
    host: Mapped[str] = mapped_column(String(255), index=True)
    action: Mapped[str] = mapped_column(String(16))
    action_class: Mapped[str] = mapped_column(String(32))
    selector: Mapped[str] = mapped_column(Text)
    items: Mapped[list[dict[str, object]]] = mapped_column(JSON)
    item_count: Mapped[int] = mapped_column(Integer)
    preview: Mapped[dict[str, object]] = mapped_column(JSON)
    plan_hash: Mapped[str] = mapped_column(String(64))
    requester: Mapped[str] = mapped_column(String(64))
    requester_team: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    approvals_needed: Mapped[int] = mapped_column(Integer)
    approvals: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    result: Mapped[dict[str, object] | None] = mapped_column(JSON)
    channel_id: Mapped[str | None] = mapped_column(String(32))


class PlanDecision(Base):
    """One person's approve or deny on one plan; a person decides a plan at most once."""

    __tablename__ = "plan_decisions"
    __table_args__ = (UniqueConstraint("plan_id", "actor"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("action_plans.id"), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    team_id: Mapped[str | None] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(8))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SlackDelivery(Base):
    """Slack deliveries already handled (event ids, interaction ids): retries are dropped."""

    __tablename__ = "slack_deliveries"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


# ---- monitoring (times are epoch seconds: portable arithmetic in SQL, no time zones) ----


class QueueSample(Base):
    """One poll of one host: counts by queue and deferred messages by reason class."""

    __tablename__ = "queue_samples"
    __table_args__ = (
        Index("ix_queue_samples_host_at", "host", "at"),
        Index("ix_queue_samples_at", "at"),  # retention works on time ranges of all hosts
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(255))
    at: Mapped[float] = mapped_column(Float)
    replica: Mapped[str] = mapped_column(String(64))
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    elapsed: Mapped[float] = mapped_column(Float)
    total: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[int] = mapped_column(Integer, default=0)
    incoming: Mapped[int] = mapped_column(Integer, default=0)
    deferred: Mapped[int] = mapped_column(Integer, default=0)
    hold: Mapped[int] = mapped_column(Integer, default=0)
    oldest_age: Mapped[int | None] = mapped_column(Integer)
    spool_kib: Mapped[int | None] = mapped_column(Integer)
    by_class: Mapped[dict[str, int]] = mapped_column(JSON)


class Incident(Base):
    """A rule crossed on a host. ``open_key`` is ``host|kind`` while open and NULL after:
    its unique index allows one open incident per host and kind. Changes are conditional
    on ``version``, so only the writer that won a change posts about it in Slack."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(255), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    open_key: Mapped[str | None] = mapped_column(String(320), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    value: Mapped[float] = mapped_column(Float)
    peak: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    detail: Mapped[dict[str, object]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=1)
    opened_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    resolved_at: Mapped[float | None] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(64))
    channel_id: Mapped[str | None] = mapped_column(String(32))
    root_ts: Mapped[str | None] = mapped_column(String(32))
    notified_value: Mapped[float | None] = mapped_column(Float)
    notified_severity: Mapped[str | None] = mapped_column(String(16))
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    acknowledged_at: Mapped[float | None] = mapped_column(Float)
    snoozed_until: Mapped[float | None] = mapped_column(Float)
    snoozed_by: Mapped[str | None] = mapped_column(String(64))
    # A group incident (one rule on many hosts) has ``group_key`` and host ``*``; a host's
    # incident that belongs to one (joined, or folded in by its reason class) has ``group_id``.
    group_key: Mapped[str | None] = mapped_column(String(320), index=True)
    group_id: Mapped[int | None] = mapped_column(Integer, index=True)
    reason_class: Mapped[str | None] = mapped_column(String(64))
    noted_at: Mapped[float | None] = mapped_column(Float)  # the last note in the thread


class Silence(Base):
    """``/mailq silence``: alerts matching ``target`` (a host, a host group, a rule, or one
    incident for the Snooze button) post nothing until ``expires_at``."""

    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target_kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class HostLease(Base):
    """Which process polls a host, until when, and when the host is next due."""

    __tablename__ = "host_leases"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(64), index=True)
    expires_at: Mapped[float] = mapped_column(Float)
    next_due: Mapped[float] = mapped_column(Float)
    polled_at: Mapped[float | None] = mapped_column(Float)


class MonitorReplica(Base):
    """A polling process's heartbeat: the live ones share the hosts between them."""

    __tablename__ = "monitor_replicas"

    replica: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[float] = mapped_column(Float)


class MaintenanceLease(Base):
    """A periodic job (``prune``) that one process at a time runs: who holds it, until when,
    and the time the last finished run worked up to (its next run starts there)."""

    __tablename__ = "maintenance_leases"

    job: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[float] = mapped_column(Float)
    done_until: Mapped[float | None] = mapped_column(Float)


class ChannelBudget(Base):
    """A Slack channel's post (or root edit) budget, shared by every replica
    (``bot.stores.budget``; ``channel`` is ``budget.key``): tokens left as of ``at``, and
    when the latest write granted goes out (wall-clock seconds)."""

    __tablename__ = "channel_budgets"

    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    at: Mapped[float] = mapped_column(Float)
    last_post: Mapped[float] = mapped_column(Float)
    version: Mapped[int] = mapped_column(Integer)
