"""The ``[retention]`` section: how long each kind of row is kept (no SQL here).

Queue samples are kept in three tiers, each coarser than the one before:

* every poll for ``samples_raw_hours`` (default 48 h). The monitor reads this history:
  a growth rule's baseline (``growth_window``, at most 24 h back), the failed polls in a
  row after a takeover, and the chart that starts 30 min before an incident opened. Two
  days covers the longest of these with a day to spare.
* one sample per host and 10 minutes up to ``samples_fine_days`` (default 30 days): enough
  for a month's trend chart and "what did the queue look like last Tuesday afternoon".
* one sample per host and hour up to ``samples_max_days`` (default 400 days: a year, and
  the same month last year), then nothing.

Each bucket keeps its busiest good poll (most deferred messages, the latest on ties), or
its latest failed poll if every poll in it failed: peaks survive downsampling, means do
not. ``command_runs`` are kept ``command_runs_days`` (default 90); every run also has its
audit event, which is never pruned. A plan (and its approvals) that is settled (done,
failed, denied or expired) is kept ``plans_days`` (default 90) after it settled; its
audit events (``plan.created`` holds the plan's hash and items) stay. Plans still
pending, approved, executing or of unknown outcome are never pruned.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

FINE_BUCKET = 600.0  # seconds: one sample per host per bucket after the raw window
COARSE_BUCKET = 3600.0


class RetentionSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    samples_raw_hours: Annotated[float, Field(ge=25, le=24 * 366)] = 48
    samples_fine_days: Annotated[float, Field(ge=1, le=3660)] = 30
    samples_max_days: Annotated[float, Field(ge=1, le=36600)] = 400
    command_runs_days: Annotated[float, Field(ge=1, le=36600)] = 90
    plans_days: Annotated[float, Field(ge=1, le=36600)] = 90
    # How often the monitor prunes (one replica at a time); 0: never (use `mailqbot prune`).
    every_minutes: Annotated[float, Field(ge=0, le=7 * 24 * 60)] = 60

    @model_validator(mode="after")
    def _tiers_in_order(self) -> RetentionSection:
        if self.samples_fine_days * 24 < self.samples_raw_hours:
            raise ValueError("retention.samples_fine_days must cover samples_raw_hours")
        if self.samples_max_days < self.samples_fine_days:
            raise ValueError("retention.samples_max_days must be at least samples_fine_days")
        return self

    @property
    def raw_seconds(self) -> float:
        return self.samples_raw_hours * 3600

    @property
    def fine_seconds(self) -> float:
        return self.samples_fine_days * 86400

    @property
    def max_seconds(self) -> float:
        return self.samples_max_days * 86400
