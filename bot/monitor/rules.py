"""From a sample (and the sample one growth window earlier) to one reading per rule.

A reading is a value with its threshold; ``level`` turns it into a severity with
hysteresis. A rule that cannot be measured on this poll (no baseline yet, no disk use, the
host unreachable) gives no reading, so its open incident is left as it is: unknown is not
the same as fine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.monitor.config import Rules, Threshold
from bot.monitor.samples import Sample
from bot.postfix.reasons import ReasonClass
from bot.stores.samples import SampleView

Severity = Literal["warning", "critical"]
UNREACHABLE = "unreachable"
SPIKE_PREFIX = "spike:"


@dataclass(frozen=True)
class Reading:
    kind: str
    value: float
    threshold: Threshold


def level(value: float, threshold: Threshold, current: str | None) -> Severity | None:
    """The severity now, given the severity so far (None: no open incident).

    Opening needs ``warning``; staying open needs ``clear``; a critical incident stays
    critical down to ``critical_clear``. Between the levels the severity holds.
    """
    if current is None:
        if value >= threshold.critical:
            return "critical"
        return "warning" if value >= threshold.warning else None
    if value < threshold.clear_level:
        return None
    if value >= threshold.critical or (current == "critical" and value >= threshold.critical_clear):
        return "critical"
    return "warning"


def measure(rules: Rules, sample: Sample, base: SampleView | None, failures: int) -> list[Reading]:
    """One reading per rule that is on and measurable on this sample."""
    readings: list[Reading] = []
    if rules.unreachable is not None:
        readings.append(Reading(UNREACHABLE, float(failures), rules.unreachable))
    if not sample.ok:
        return readings
    if rules.queued is not None:
        readings.append(Reading("queued", float(sum(sample.queues.values())), rules.queued))
    if rules.deferred is not None:
        readings.append(Reading("deferred", float(sample.deferred), rules.deferred))
    if rules.oldest_age is not None:
        readings.append(Reading("oldest_age", float(sample.oldest_age or 0), rules.oldest_age))
    if rules.spool_kib is not None and sample.spool_kib is not None:
        readings.append(Reading("spool_kib", float(sample.spool_kib), rules.spool_kib))
    if base is not None and sample.at - base.at >= rules.growth_window / 2:
        readings += _window_readings(rules, sample, base)
    return readings


def _window_readings(rules: Rules, sample: Sample, base: SampleView) -> list[Reading]:
    readings: list[Reading] = []
    if rules.growth is not None:
        minutes = (sample.at - base.at) / 60
        rate = (sample.deferred - base.deferred) / minutes
        readings.append(Reading("growth", round(rate, 2), rules.growth))
    if rules.reason_spike is not None:
        for reason_class in ReasonClass:
            added = sample.by_class.get(reason_class.value, 0) - base.by_class.get(
                reason_class.value, 0
            )
            readings.append(
                Reading(SPIKE_PREFIX + reason_class.value, float(added), rules.reason_spike)
            )
    return readings


def needs_disk(rules: Rules) -> bool:
    return rules.spool_kib is not None
