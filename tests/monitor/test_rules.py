"""Rule levels with hysteresis, and which rules a sample can measure."""

from __future__ import annotations

import pytest

from bot.errors import ConfigError
from bot.inventory import parse_config
from bot.monitor.alert import Alert
from bot.monitor.config import Rules, Threshold
from bot.monitor.rules import level, measure
from bot.monitor.samples import Sample
from bot.stores.samples import SampleView

T = Threshold(warning=100, critical=200, clear=80)


def test_a_value_hovering_at_the_threshold_does_not_flap() -> None:
    severity = None
    changes = 0
    for value in [99, 101, 99, 101, 95, 100, 85, 101]:
        new = level(value, T, severity)
        changes += new != severity
        severity = new
    assert changes == 1  # opened once at 101, never cleared above 80
    assert level(79, T, severity) is None


def test_critical_holds_down_to_its_own_clear_level() -> None:
    assert level(250, T, None) == "critical"
    assert level(181, T, "critical") == "critical"  # critical - (warning - clear) = 180
    assert level(179, T, "critical") == "warning"
    assert level(199, T, "warning") == "warning"


def test_clear_must_be_below_warning() -> None:
    with pytest.raises(ConfigError, match="clear must be below warning"):
        parse_config(
            '[ssh]\nknown_hosts = "/k"\n[[hosts]]\nname = "a"\naddress = "h"\n'
            "[monitor.rules]\ndeferred = { warning = 10, critical = 20, clear = 10 }\n"
        )


def test_unreachable_host_measures_only_failures() -> None:
    rules = Rules(growth=T)
    failed = Sample("h", 1000.0, ok=False, elapsed=0.1, error="connection refused")
    assert [(r.kind, r.value) for r in measure(rules, failed, None, 3)] == [("unreachable", 3)]


def test_growth_and_spikes_need_a_baseline_half_a_window_old() -> None:
    rules = Rules(growth=T, reason_spike=T, growth_window=600)
    sample = Sample("h", 1000.0, True, 0.1, queues={"deferred": 400}, by_class={"greylisted": 300})
    young = SampleView("h", 800.0, 100, {"greylisted": 50})
    assert {r.kind for r in measure(rules, sample, young, 0)} == {"unreachable", "deferred"}
    old = SampleView("h", 400.0, 100, {"greylisted": 50})
    values = {r.kind: r.value for r in measure(rules, sample, old, 0)}
    assert values["growth"] == 30.0  # 300 messages in 10 minutes
    assert values["spike:greylisted"] == 250
    assert values["spike:mailbox_full"] == 0


def alert(kind: str, by_class: dict[str, int]) -> Alert:
    return Alert(
        7, "mx1", kind, "open", "warning", 1.0, 1.0, 1.0, {"by_class": by_class},
        0.0, 0.0, None, None, None, None, None, None,
    )  # fmt: skip


def test_purge_button_plans_the_top_reason_class() -> None:
    top = alert("deferred", {"greylisted": 40, "connection_refused": 90, "other": 90})
    values = {b.text: b.value for b in top.buttons}
    assert values["Purge…"] == 'purge mx1 reason=connection_refused why="alert 7"'
    spike = alert("spike:mailbox_full", {"greylisted": 400, "mailbox_full": 30})
    assert spike.purge_class == "mailbox_full"  # the class that spiked, not the largest
    hostile = alert("deferred", {"x; rm -rf /": 500})
    assert hostile.purge_class is None
    assert "Purge…" not in {b.text for b in alert("unreachable", {}).buttons}


def test_the_runbook_preset_alerts_past_100_queued_messages() -> None:
    """The runbook's rule: more than 100 messages queued, in all queues together."""
    config = parse_config(
        '[ssh]\nknown_hosts = "/k"\n[[hosts]]\nname = "a"\naddress = "h"\ngroups = ["small"]\n'
        '[[hosts]]\nname = "b"\naddress = "h2"\n'
        '[monitor.groups.small]\npreset = "runbook"\n',
        "<test>",
    )
    small = config.monitor.rules_for(("small",))
    assert small.deferred is None
    assert small.queued is not None
    queues = {"incoming": 1, "active": 20, "deferred": 70, "hold": 9}  # 100: not more than 100
    (reading,) = [r for r in measure(small, Sample("a", 0.0, True, 0.1, queues=queues), None, 0)
                  if r.kind == "queued"]  # fmt: skip
    assert level(reading.value, reading.threshold, None) is None
    queues["active"] += 1
    (reading,) = [r for r in measure(small, Sample("a", 0.0, True, 0.1, queues=queues), None, 0)
                  if r.kind == "queued"]  # fmt: skip
    assert level(reading.value, reading.threshold, None) == "warning"
    large = config.monitor.rules_for(())  # the defaults: for larger hosts
    assert large.queued is None
    assert large.deferred is not None
    assert large.deferred.warning == 1000


def test_an_unreachable_host_has_no_queue_readings() -> None:
    """Inhibition: while polls fail, only the unreachable rule speaks for the host."""
    down = Threshold(warning=2, critical=5, clear=1)
    rules = Rules(queued=T, deferred=None, oldest_age=T, unreachable=down)
    failed = Sample("a", 0.0, False, 3.0, error="connect timed out")
    assert [r.kind for r in measure(rules, failed, None, 3)] == ["unreachable"]
    good = Sample("a", 0.0, True, 0.1, queues={"deferred": 150})
    assert {r.kind for r in measure(rules, good, None, 0)} == {
        "unreachable",
        "queued",
        "oldest_age",
    }
