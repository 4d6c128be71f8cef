"""``/metrics`` tells the truth: scraped over its real listener while simulated hosts (real
in-process SSH servers) go unreachable, and checked against Prometheus naming conventions by
parsing the exposition with prometheus_client's own parsers (text format and OpenMetrics).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client.openmetrics import exposition as om_exposition
from prometheus_client.openmetrics import parser as om_parser
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample as PromSample

from bot.app.pipeline import handle
from bot.app.runtime import open_services
from bot.app.services import LiveServices
from bot.context import Request
from bot.inventory import Inventory, parse_config
from bot.monitor.courier import Counters
from bot.monitor.metrics import Metrics
from bot.monitor.samples import Sample
from bot.monitor.scheduler import Monitor
from bot.settings import Settings
from bot.slack.alerts import SlackNotifier
from bot.slack.client import make_client
from helpers.fakes import FakeSlack
from helpers.simhosts import farm

MONITOR = """[monitor]
interval = "300ms"
jitter = 0
tick = "100ms"
[monitor.rules]
deferred = { warning = 100, critical = 200, clear = 80 }
"""
SUCCESS = "mailqbot_last_poll_success_timestamp_seconds"
QUEUE_GAUGES = (
    "mailqbot_queue_messages",
    "mailqbot_deferred_messages",
    "mailqbot_oldest_message_age_seconds",
)


@asynccontextmanager
async def listener(metrics: Metrics) -> AsyncIterator[str]:
    """The metrics listener as ``serve`` builds it, on a free loopback port."""
    app = web.Application()
    app.router.add_get("/metrics", metrics.handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        await runner.cleanup()


async def scrape(url: str) -> list[PromSample]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = await response.text()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def by_host(samples: list[PromSample], name: str) -> dict[str, float]:
    return {s.labels["host"]: s.value for s in samples if s.name == name}


def hosts_in(samples: list[PromSample], name: str) -> set[str]:
    return {s.labels["host"] for s in samples if s.name == name}


async def scrape_until(url: str, check, timeout: float = 15.0) -> list[PromSample]:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while True:
            samples = await scrape(url)
            if check(samples):
                return samples
            await asyncio.sleep(0.1)


async def test_an_outage_shows_host_up_0_and_no_stale_queue_gauges(
    tmp_path: Path, db_url: str
) -> None:
    """Four hosts; two go unreachable (their SSH servers close), one answers but its
    ``postqueue`` fails: those three show host_up 0, keep their last good poll's time and
    lose every queue gauge; the fourth keeps going; the failing one comes back."""
    async with FakeSlack() as slack, farm(tmp_path, 4) as world:
        world.deferred |= {"h00": 5, "h01": 30, "h02": 7, "h03": 12}
        settings = Settings(
            DATABASE_URL=db_url, SLACK_API_URL=slack.api_url, SLACK_BOT_TOKEN="xoxb-test"
        )
        inventory = Inventory(parse_config(world.config(MONITOR), "<test>"))
        async with open_services(settings, inventory) as services:
            metrics = services.metrics
            notifier = SlackNotifier(make_client(settings), "C0ALERTS")
            monitor = Monitor(LiveServices(services), notifier, metrics)
            stop = asyncio.Event()
            task = asyncio.create_task(monitor.run(stop))
            try:
                async with listener(metrics) as url:
                    everyone = dict.fromkeys(world.servers, 1.0)
                    all_up = await scrape_until(
                        url, lambda s: by_host(s, "mailqbot_host_up") == everyone
                    )
                    queued = {
                        s.labels["host"]: s.value
                        for s in all_up
                        if s.name == "mailqbot_queue_messages" and s.labels["queue"] == "deferred"
                    }
                    assert queued == {"h00": 5.0, "h01": 30.0, "h02": 7.0, "h03": 12.0}
                    ages = by_host(all_up, "mailqbot_oldest_message_age_seconds")
                    # message n arrived n minutes before the host answered; the age counts from
                    # the poll's start, up to a second earlier: hence the - 1
                    assert 29 * 60 - 1 <= ages["h01"] <= 29 * 60 + 30
                    assert 4 * 60 - 1 <= ages["h00"] <= 4 * 60 + 30

                    outage = time.time()
                    await world.servers["h00"].close()
                    await world.servers["h01"].close()
                    world.down.add("h02")
                    failed = {"h00", "h01", "h02"}
                    down = await scrape_until(
                        url,
                        lambda s: (
                            {h for h, v in by_host(s, "mailqbot_host_up").items() if v == 0}
                            == failed
                            and by_host(s, SUCCESS)["h03"] > outage  # h03 is still polled
                        ),
                    )
                    for name in QUEUE_GAUGES:
                        assert hosts_in(down, name) == {"h03"}, name
                    last_good = by_host(down, SUCCESS)
                    assert set(last_good) == set(world.servers)
                    assert all(last_good[h] <= outage for h in failed)
                    errors = by_host(down, "mailqbot_poll_errors_total")
                    assert set(errors) == failed
                    polls = {
                        s.labels["outcome"]: s.value
                        for s in down
                        if s.name == "mailqbot_polls_total"
                    }
                    durations = "mailqbot_poll_duration_seconds_count"
                    count = next(s for s in down if s.name == durations)
                    assert count.value == polls["ok"] + polls["error"]
                    assert sum(errors.values()) == polls["error"]

                    world.down.discard("h02")  # the mail system is back on h02
                    back = await scrape_until(
                        url, lambda s: by_host(s, "mailqbot_host_up").get("h02") == 1.0
                    )
                    assert hosts_in(back, "mailqbot_queue_messages") == {"h02", "h03"}
                    assert by_host(back, "mailqbot_host_up")["h00"] == 0.0
            finally:
                stop.set()
                await task


def _sample(host: str, ok: bool, **values: object) -> Sample:
    return Sample(host, time.time(), ok, 0.2, **values)  # type: ignore[arg-type]


async def populated(db_url: str, tmp_path: Path) -> Metrics:
    """Every family with series in it: good and failed polls, a spool, a command run, the
    cluster-wide gauges read from a migrated database."""
    settings = Settings(DATABASE_URL=db_url, MAILQBOT_CONFIG=str(tmp_path / "none.toml"))
    (tmp_path / "known_hosts").write_text("", encoding="ascii")
    config = f'[ssh]\nknown_hosts = "{tmp_path / "known_hosts"}"\n'
    config += '[[hosts]]\nname = "mx1"\naddress = "127.0.0.1"\n'
    inventory = Inventory(parse_config(config, "<test>"))
    async with open_services(settings, inventory) as services:
        metrics = services.metrics
        metrics.observe(
            _sample(
                "mx1",
                True,
                queues={"deferred": 3, "active": 1},
                by_class={"connection_refused": 3},
                oldest_age=120,
                spool_kib=64,
            )
        )
        metrics.observe(_sample("mx2", False, error="connection refused"))
        metrics.leased({"mx1", "mx2"})
        await handle(Request("console", "U0ADMIN", "help"), services)
        await metrics.refresh()
    return metrics


UNIT_WORDS = ("age", "duration", "time", "timestamp", "latency", "delay", "seconds")
BAD_SUFFIXES = re.compile(
    r"_(ms|msec|millis|milliseconds|us|minutes?|hours?|days?|kib|kb|mb|gb|kilobytes|megabytes|percent)$"
)


async def test_names_follow_the_prometheus_conventions(db_url: str, tmp_path: Path) -> None:
    metrics = await populated(db_url, tmp_path)
    metrics.follow_alerts(Counters(posted=4, folded=3, edits=5))
    text = metrics.render().decode()
    families = list(text_string_to_metric_families(text))
    names = {f.name: f for f in families}
    assert {
        "mailqbot_host_up",
        "mailqbot_last_poll_success_timestamp_seconds",
        "mailqbot_queue_messages",
        "mailqbot_deferred_messages",
        "mailqbot_oldest_message_age_seconds",
        "mailqbot_spool_bytes",
        "mailqbot_polls",
        "mailqbot_poll_errors",
        "mailqbot_poll_duration_seconds",
        "mailqbot_hosts_leased",
        "mailqbot_commands",
        "mailqbot_audit_write_failures",
        "mailqbot_incidents_open",
        "mailqbot_action_plans_unfinished",
        "mailqbot_cluster_read_timestamp_seconds",
        "mailqbot_alert_slack_calls",
    } <= set(names)
    for family in families:
        name = family.name
        assert re.fullmatch(r"mailqbot_[a-z][a-z0-9_]*[a-z0-9]", name), name
        assert family.documentation.strip(), f"{name} has no HELP"
        assert not BAD_SUFFIXES.search(name), f"{name}: use base units (seconds, bytes)"
        assert family.type in {"counter", "gauge", "histogram"}, name
        words = name.split("_")
        if any(w in words for w in UNIT_WORDS) or family.type == "histogram":
            assert name.endswith(("_seconds", "_bytes")), f"{name} needs a unit suffix"
        if "timestamp" in words:
            assert name.endswith("_timestamp_seconds"), name
        for sample in family.samples:
            for label in sample.labels:
                assert re.fullmatch(r"[a-z][a-z0-9_]*", label), (name, label)
            if family.type == "counter":
                assert sample.name == f"{name}_total", f"{sample.name}: a counter ends in _total"
            elif family.type == "gauge":
                assert sample.name == name
                assert not name.endswith("_total"), f"{name}: only counters end in _total"
    assert "_created" not in text  # no creation-time series doubling every counter
    assert {s.value for s in names["mailqbot_host_up"].samples} == {0.0, 1.0}
    assert by_host(names["mailqbot_spool_bytes"].samples, "mailqbot_spool_bytes") == {
        "mx1": 65536.0
    }
    calls = {s.labels["kind"]: s.value for s in names["mailqbot_alert_slack_calls"].samples}
    assert calls == {"posted": 4, "folded": 3, "edits": 5, "edits_coalesced": 0, "failed": 0}
    ran = {tuple(s.labels.values()): s.value for s in names["mailqbot_commands"].samples}
    assert ran == {("help", "ok"): 1.0}
    # The OpenMetrics parser is stricter still (counters, units, the EOF marker).
    openmetrics = om_exposition.generate_latest(metrics.registry).decode()
    parsed = {f.name for f in om_parser.text_string_to_metric_families(openmetrics)}
    assert parsed == set(names)


async def test_a_failed_poll_drops_the_queue_gauges_and_a_lost_lease_every_series() -> None:
    metrics = Metrics()
    metrics.observe(_sample("mx1", True, queues={"deferred": 3}, by_class={"dns": 3}))
    metrics.observe(_sample("mx1", True, queues={"deferred": 2}, by_class={"tls": 2}))
    text = metrics.render().decode()
    assert 'reason_class="dns"' not in text  # a class no longer deferred: its series goes
    assert 'mailqbot_deferred_messages{host="mx1",reason_class="tls"} 2.0' in text
    metrics.observe(_sample("mx1", False, error="timeout"))
    text = metrics.render().decode()
    assert 'mailqbot_host_up{host="mx1"} 0.0' in text
    for name in (*QUEUE_GAUGES, "mailqbot_spool_bytes"):
        assert f"{name}{{" not in text, name
    assert 'mailqbot_last_poll_success_timestamp_seconds{host="mx1"}' in text
    metrics.leased(set())  # the lease went to another process
    text = metrics.render().decode()
    assert 'host="mx1"' not in text.replace('mailqbot_poll_errors_total{host="mx1"}', "")
