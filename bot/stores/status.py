"""What is open now across all replicas: open incidents and plans not yet finished.

Small, bounded reads for the cluster-wide gauges of ``/metrics``, refreshed in the background
(never per scrape): each counts only rows in an open state, so their cost follows what is
open, not the history (samples, runs, finished plans) kept beside it.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import ActionPlan, Incident

UNFINISHED_PLANS = ("pending", "approved", "executing")


async def open_incidents(session: AsyncSession) -> list[tuple[str, str, int]]:
    """(kind, severity, count) of open incidents."""
    stmt = (
        select(Incident.kind, Incident.severity, func.count())
        .where(Incident.state == "open")
        .group_by(Incident.kind, Incident.severity)
    )
    return [(str(k), str(s), int(n)) for k, s, n in (await session.execute(stmt)).all()]


async def unfinished_plans(session: AsyncSession) -> list[tuple[str, str, int]]:
    """(action, status, count) of plans still pending, approved or executing (``status``
    is indexed: finished plans are not read)."""
    stmt = (
        select(ActionPlan.action, ActionPlan.status, func.count())
        .where(ActionPlan.status.in_(UNFINISHED_PLANS))
        .group_by(ActionPlan.action, ActionPlan.status)
    )
    return [(str(a), str(s), int(n)) for a, s, n in (await session.execute(stmt)).all()]
