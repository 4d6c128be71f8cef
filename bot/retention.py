"""The ``[retention]`` section: how long each kind of row is kept (no SQL here).

Queue samples are kept in three tiers, each coarser than the one before:

* every poll for ``samples_raw`` (default 48h). The monitor reads this history:
  a growth rule's baseline (``growth_window``, at most 24 h back), the failed polls in a
  row after a takeover, and the chart that starts 30 min before an incident opened. Two
  days covers the longest of these with a day to spare.
* one sample per host and 10 minutes up to ``samples_fine`` (default 30d): enough
  for a month's trend chart and "what did the queue look like last Tuesday afternoon".
* one sample per host and hour up to ``samples_max`` (default 400d: a year, and
  the same month last year), then nothing.

Each bucket keeps its busiest good poll (most deferred messages, the latest on ties), or
its latest failed poll if every poll in it failed: peaks survive downsampling, means do
not. ``command_runs`` are kept ``command_runs`` (default 90d); every run also has its
audit event, which is never pruned. A plan (and its approvals) that is settled (done,
failed, denied or expired) is kept ``plans`` (default 90d) after it settled; its
audit events (``plan.created`` holds the plan's hash and items) stay. Plans still
pending, approved, executing or of unknown outcome are never pruned.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.config_checks import Seconds

FINE_BUCKET = 600.0  # seconds: one sample per host per bucket after the raw window
COARSE_BUCKET = 3600.0
HOUR = 3600.0
DAY = 86400.0


class RetentionSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Durations, as everywhere in the config: "48h", "30d", "1w".
    samples_raw: Annotated[Seconds, Field(ge=25 * HOUR, le=366 * DAY)] = 48 * HOUR
    samples_fine: Annotated[Seconds, Field(ge=DAY, le=3660 * DAY)] = 30 * DAY
    samples_max: Annotated[Seconds, Field(ge=DAY, le=36600 * DAY)] = 400 * DAY
    command_runs: Annotated[Seconds, Field(ge=DAY, le=36600 * DAY)] = 90 * DAY
    plans: Annotated[Seconds, Field(ge=DAY, le=36600 * DAY)] = 90 * DAY
    # Resolved incidents (by resolution time) and silences (by expiry); an open incident or
    # a silence in force is never pruned. Acknowledgements, snoozes and silence commands
    # stay in the audit trail.
    incidents: Annotated[Seconds, Field(ge=DAY, le=36600 * DAY)] = 400 * DAY
    silences: Annotated[Seconds, Field(ge=DAY, le=36600 * DAY)] = 90 * DAY
    # How often the monitor prunes (one replica at a time); background = false: never
    # (run `mailqbot prune` yourself).
    every: Annotated[Seconds, Field(gt=0, le=7 * DAY)] = HOUR
    background: bool = True

    @model_validator(mode="after")
    def _tiers_in_order(self) -> RetentionSection:
        if self.samples_fine < self.samples_raw:
            raise ValueError("retention.samples_fine must cover samples_raw")
        if self.samples_max < self.samples_fine:
            raise ValueError("retention.samples_max must be at least samples_fine")
        return self

    @property
    def raw_seconds(self) -> float:
        return self.samples_raw

    @property
    def fine_seconds(self) -> float:
        return self.samples_fine

    @property
    def max_seconds(self) -> float:
        return self.samples_max
