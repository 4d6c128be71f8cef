"""The ``[monitor]`` section of the config file: intervals, leases and alert rules.

Every rule has a ``warning`` and a ``critical`` level and a ``clear`` level below
``warning``: an incident opens when a value reaches ``warning`` and resolves only when it
falls below ``clear``, so a value hovering at a threshold does not flap. A host group may
override the interval and any rule (``[monitor.groups.NAME]``): the rules it names replace
those of ``[monitor.rules]``, the others stay as there; a host in several groups takes the
first of its groups that has a section. ``enabled = false`` in a rule's table switches it
off (``[monitor.rules.deferred]`` ``enabled = false``). Intervals are durations (``"60s"``,
``"1h30m"``).
"""

from __future__ import annotations

import fnmatch
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.config_checks import Seconds


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Threshold(_Strict):
    enabled: Literal[True] = True  # enabled = false turns the rule off (see Rules)
    warning: Annotated[float, Field(ge=0)]
    critical: Annotated[float, Field(ge=0)]
    clear: Annotated[float, Field(ge=0)] | None = None  # default: 80 % of warning

    @model_validator(mode="after")
    def _ordered(self) -> Threshold:
        if self.critical < self.warning:
            raise ValueError("critical must be at least warning")
        if self.clear is not None and self.clear >= self.warning:
            raise ValueError("clear must be below warning (that gap is the hysteresis)")
        return self

    @property
    def clear_level(self) -> float:
        return self.clear if self.clear is not None else self.warning * 0.8

    @property
    def critical_clear(self) -> float:
        """Below this a critical incident goes back to warning (the same gap as clear)."""
        return self.critical - (self.warning - self.clear_level)


RULE_NAMES = ("deferred", "growth", "oldest_age", "spool_kib", "reason_spike", "unreachable")


class Rules(_Strict):
    """What is measured on each poll; a rule set to nothing is off."""

    # Messages in all queues (incoming, active, deferred, hold).
    queued: Threshold | None = None
    deferred: Threshold | None = Threshold(warning=1000, critical=5000, clear=800)
    # Deferred messages added per minute, over ``growth_window`` seconds.
    growth: Threshold | None = None
    # Seconds since the oldest message arrived.
    oldest_age: Threshold | None = None
    # KiB in the deferred spool (``du``; needs the sudoers rule).
    spool_kib: Threshold | None = None
    # Deferred messages of one reason class added over ``growth_window`` seconds.
    reason_spike: Threshold | None = None
    # Polls failed in a row.
    unreachable: Threshold | None = Threshold(warning=2, critical=5, clear=1)
    growth_window: Annotated[Seconds, Field(gt=0, le=86400)] = 600

    @field_validator(*RULE_NAMES, mode="before")
    @classmethod
    def _switched_off(cls, value: Any) -> Any:
        """``enabled = false`` in a rule's table: the rule is off (None)."""
        if isinstance(value, dict) and value.get("enabled") is False:
            return None
        return value

    def merged(self, override: Rules) -> Rules:
        """These rules with those ``override`` names (including ones it turns off)."""
        changed = {name: getattr(override, name) for name in override.model_fields_set}
        return self.model_copy(update=changed)


# Ready rule sets a host group can name (``preset = "runbook"``); docs/ops/alerts.md.
PRESETS: dict[str, Rules] = {
    # The runbook's own rule: alert when more than 100 messages are queued.
    "runbook": Rules(
        queued=Threshold(warning=101, critical=500, clear=80),
        deferred=None,
    ),
}


class GroupMonitor(_Strict):
    interval: Annotated[Seconds, Field(gt=0, le=86400)] | None = None
    preset: Literal["runbook"] | None = None
    rules: Rules | None = None

    @model_validator(mode="after")
    def _one(self) -> GroupMonitor:
        if self.preset is not None and self.rules is not None:
            raise ValueError("give a preset or rules, not both")
        return self

    @property
    def chosen(self) -> Rules | None:
        return PRESETS[self.preset] if self.preset else self.rules


class Grouping(_Strict):
    """Which rules share one incident across hosts, and by what.

    A rule listed in ``rules`` (``fnmatch`` patterns) opens no root per host: its hosts join
    the open group incident of their key (the rule, plus the host's first group and/or the
    reason class if ``by`` names them). A key whose group resolved less than ``window``
    seconds ago reopens it in the same thread instead of posting a new root.
    """

    rules: tuple[str, ...] = ("unreachable", "spike:*")
    by: tuple[Literal["group", "reason_class"], ...] = ()
    window: Annotated[Seconds, Field(ge=0, le=86400)] = 300.0

    def groups(self, kind: str) -> bool:
        return any(fnmatch.fnmatchcase(kind, pattern) for pattern in self.rules)


class Budget(_Strict):
    """Every Slack post the monitor makes in a channel takes a token: ``burst`` at most,
    refilled at ``per_minute``; posts are at least ``gap`` seconds apart (Slack: one
    message per second per channel). A thread note with no token is folded into an edit of
    its root (counted); an edit of a message waits ``edit_gap`` after its last one, and
    the edits asked for meanwhile become one; edits in a channel keep to
    ``edits_per_minute``."""

    per_minute: Annotated[float, Field(gt=0, le=600)] = 20.0
    burst: Annotated[int, Field(ge=1, le=100)] = 5
    gap: Annotated[Seconds, Field(ge=1, le=60)] = 1.0
    edit_gap: Annotated[Seconds, Field(ge=0, le=600)] = 2.0
    # chat.update calls per channel (Slack's tier 3: about 50 a minute); edits wait for it.
    edits_per_minute: Annotated[float, Field(gt=0, le=600)] = 50.0


class Silences(_Strict):
    # ``/mailq silence`` needs every permission of this role on the hosts it mutes.
    role: Literal["viewer", "operator", "approver", "admin"] = "operator"
    longest: Annotated[Seconds, Field(gt=0, le=90 * 86400)] = 7 * 86400.0


class MonitorSection(_Strict):
    enabled: bool = True
    interval: Annotated[Seconds, Field(gt=0, le=86400)] = 60.0
    # Each host gets a random phase in its interval and is polled on it; a poll found
    # overdue (a lease just taken over, a stalled process) starts within ``jitter`` x
    # interval, at random, so such a burst is spread out.
    jitter: Annotated[float, Field(ge=0, le=0.5)] = 0.1
    concurrency: Annotated[int, Field(ge=1, le=1024)] = 64
    # After a resolve, a new crossing within this many seconds reopens the same incident.
    cooldown: Annotated[Seconds, Field(ge=0, le=7 * 86400)] = 900.0
    # How often a process renews its leases and looks for due hosts; lease lifetime.
    tick: Annotated[Seconds, Field(gt=0, le=60)] | None = None  # default: min(5, interval/5)
    lease_ttl: Annotated[Seconds, Field(gt=0, le=3600)] | None = None  # default: 3 ticks
    chart: bool = True
    # A thread note for growth at most this often (severity changes are always noted);
    # between notes the root is edited with the latest numbers.
    notes_every: Annotated[Seconds, Field(ge=0, le=86400)] = 900.0
    grouping: Grouping = Field(default_factory=Grouping)
    budget: Budget = Field(default_factory=Budget)
    silences: Silences = Field(default_factory=Silences)
    rules: Rules = Field(default_factory=Rules)
    groups: dict[str, GroupMonitor] = Field(default_factory=dict)

    def interval_for(self, groups: tuple[str, ...]) -> float:
        group = self._group(groups)
        return group.interval if group and group.interval else self.interval

    def rules_for(self, groups: tuple[str, ...]) -> Rules:
        group = self._group(groups)
        chosen = group.chosen if group else None
        return self.rules.merged(chosen) if chosen is not None else self.rules

    def _group(self, groups: tuple[str, ...]) -> GroupMonitor | None:
        return next((self.groups[g] for g in groups if g in self.groups), None)

    @property
    def min_interval(self) -> float:
        return min([self.interval, *(g.interval for g in self.groups.values() if g.interval)])

    @property
    def tick_seconds(self) -> float:
        return self.tick if self.tick else min(5.0, self.min_interval / 5)

    @property
    def ttl_seconds(self) -> float:
        return self.lease_ttl if self.lease_ttl else 3 * self.tick_seconds
