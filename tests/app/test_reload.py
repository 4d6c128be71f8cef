"""Reloading the inventory without a restart: SIGHUP adds a host while a summary runs, and that
summary completes; a config that fails validation keeps the old inventory and logs why;
``mailqbot reload`` checks the config, then signals the pid in the pid file."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app.pipeline import handle
from bot.app.reload import on_sighup, pid_path, send_reload
from bot.app.runtime import open_services
from bot.app.services import LiveServices
from bot.context import Request
from bot.demo import DemoHost, _handler, demo_queue
from bot.demo.ssh import ScriptedSSHServer, generate_client_key
from bot.settings import Settings


class Gate:
    """A demo mail host whose ``postqueue -j`` waits until released."""

    def __init__(self, name: str) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.inner = _handler(DemoHost(name, demo_queue(name, 50, time.time())))

    async def __call__(self, line: str, stdin: bytes):  # type: ignore[no-untyped-def]
        if "postqueue" in line:
            self.entered.set()
            await self.release.wait()
        return await self.inner(line, stdin)


def host_entry(name: str, server: ScriptedSSHServer) -> str:
    return f'[[hosts]]\nname = "{name}"\naddress = "127.0.0.1"\nport = {server.port}\n'


@pytest.fixture
async def world(tmp_path: Path, db_url: str) -> AsyncIterator[tuple[LiveServices, dict, Path]]:
    key = generate_client_key(tmp_path / "keys")
    gates = {name: Gate(name) for name in ("mx1", "mx2")}
    servers = {name: ScriptedSSHServer(gate, key.public_key) for name, gate in gates.items()}
    for server in servers.values():
        await server.start()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("".join(s.known_hosts_line() for s in servers.values()))
    config = tmp_path / "mailqbot.toml"
    head = (  # a config serve would start with: it has a grant
        f'[ssh]\nprivate_key = "{key.private_key}"\nknown_hosts = "{known_hosts}"\n'
        '[[access.grants]]\nrole = "viewer"\nmembers = ["U0VIEWER"]\n'
    )
    config.write_text(head + host_entry("mx1", servers["mx1"]))
    settings = Settings(
        DATABASE_URL=db_url, MAILQBOT_CONFIG=str(config), MAILQBOT_STATE_DIR=str(tmp_path / "st")
    )
    try:
        async with open_services(settings) as services:
            live = LiveServices(services)
            async with on_sighup(live):
                yield live, {"gates": gates, "servers": servers, "head": head}, config
    finally:
        for server in servers.values():
            await server.close()


def console(text: str) -> Request:
    return Request(source="console", user_id="console:ops", text=text)


async def until(condition, seconds: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_sighup_adds_a_host_while_a_summary_runs(world) -> None:  # type: ignore[no-untyped-def]
    live, parts, config = world
    gates, servers = parts["gates"], parts["servers"]
    assert pid_path(live.now().settings).read_text() == f"{os.getpid()}\n"
    running = asyncio.create_task(handle(console("summary mx1"), live.now()))
    await asyncio.wait_for(gates["mx1"].entered.wait(), 10)  # the summary is reading the queue

    config.write_text(parts["head"] + host_entry("mx1", servers["mx1"]) +
                      host_entry("mx2", servers["mx2"]))  # fmt: skip
    os.kill(os.getpid(), signal.SIGHUP)
    await until(lambda: "mx2" in live.now().inventory.names)
    assert not running.done()

    gates["mx1"].release.set()
    outcome = await asyncio.wait_for(running, 30)
    assert outcome.ok, outcome.reply.text
    assert "mx1" in outcome.reply.text

    gates["mx2"].release.set()
    second = await handle(console("summary mx2"), live.now())  # the new host, no restart
    assert second.ok, second.reply.text
    assert "mx2" in second.reply.text


async def test_a_reload_that_fails_validation_keeps_the_old_inventory(
    world, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    live, parts, config = world
    before = live.now().inventory
    config.write_text(parts["head"] + '[[hosts]]\nname = "Bad Name"\n')
    with caplog.at_level(logging.ERROR, logger="bot.app.reload"):
        os.kill(os.getpid(), signal.SIGHUP)
        await until(lambda: any("reload" in r.message for r in caplog.records))
    assert live.now().inventory is before
    [record] = [r for r in caplog.records if r.name == "bot.app.reload"]
    assert "refused, keeping the inventory of 1 host(s)" in record.message
    assert "hosts[0].address: Field required" in record.message

    status, message = send_reload(live.now().settings)  # the command line checks first
    assert status == 1
    assert "Not reloaded: the running bot keeps its inventory." in message
    assert live.now().inventory is before


async def test_mailqbot_reload_signals_the_running_bot(world) -> None:  # type: ignore[no-untyped-def]
    live, parts, config = world
    config.write_text(parts["head"] + host_entry("mx2", parts["servers"]["mx2"]))
    status, message = send_reload(live.now().settings)
    assert status == 0
    assert f"(pid {os.getpid()})" in message
    await until(lambda: live.now().inventory.names == ["mx2"])


async def test_mailqbot_reload_checks_what_the_bot_will_check(world) -> None:  # type: ignore[no-untyped-def]
    """A config the running bot would refuse (here: a known_hosts file that is not there, no
    grants) is refused by `mailqbot reload` too, and no signal is sent."""
    live, parts, config = world
    before = live.now().inventory
    missing = str(config.parent / "nowhere")
    head = parts["head"].replace(str(config.parent / "known_hosts"), missing)
    config.write_text(
        head.split("[[access.grants]]")[0] + host_entry("mx2", parts["servers"]["mx2"])
    )
    status, message = send_reload(live.now().settings)
    assert status == 1
    assert f"ssh.known_hosts: {missing} does not exist" in message
    assert "access.grants: there are none" in message
    assert message.endswith("Not reloaded: the running bot keeps its inventory.")
    await asyncio.sleep(0.3)  # a SIGHUP would have been handled by now
    assert live.now().inventory is before


def test_mailqbot_reload_without_a_running_bot(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    (tmp_path / "k").write_text("")
    config.write_text(
        f'[[hosts]]\nname = "a"\naddress = "192.0.2.1"\nknown_hosts = "{tmp_path / "k"}"\n'
        '[[access.grants]]\nrole = "viewer"\nmembers = ["U0VIEWER"]\n'
    )
    settings = Settings(MAILQBOT_CONFIG=str(config), MAILQBOT_STATE_DIR=str(tmp_path / "st"))
    status, message = send_reload(settings)
    assert status == 1
    assert "no running `mailqbot serve` found" in message
    pid_path(settings).parent.mkdir()
    pid_path(settings).write_text("999999999\n")
    status, message = send_reload(settings)
    assert (status, message) == (1, f"{pid_path(settings)} names pid 999999999, which is not "
                                 "running: start the bot.")  # fmt: skip


async def test_a_summary_finishes_on_the_inventory_it_started_with(world) -> None:  # type: ignore[no-untyped-def]
    """Even a reload that removes the host mid-summary leaves that request alone."""
    live, parts, config = world
    gates, servers = parts["gates"], parts["servers"]
    running = asyncio.create_task(handle(console("summary mx1"), live.now()))
    await asyncio.wait_for(gates["mx1"].entered.wait(), 10)
    config.write_text(parts["head"] + host_entry("mx2", servers["mx2"]))
    os.kill(os.getpid(), signal.SIGHUP)
    await until(lambda: live.now().inventory.names == ["mx2"])
    gates["mx1"].release.set()
    outcome = await asyncio.wait_for(running, 30)
    assert outcome.ok, outcome.reply.text
    after = await handle(console("summary mx1"), live.now())
    assert not after.ok
    assert "Unknown host `mx1`. Did you mean `mx2`?" in after.reply.text


async def test_a_prepared_request_keeps_its_inventory_across_a_reload(world) -> None:  # type: ignore[no-untyped-def]
    """Each request holds its own view of the services: what it authorised against is what
    it runs on, whatever a reload does meanwhile."""
    from bot.app.pipeline import Prepared, execute, prepare

    live, parts, config = world
    prepared = await prepare(console("summary mx1"), live.now())
    assert isinstance(prepared, Prepared)
    config.write_text(parts["head"] + host_entry("mx2", parts["servers"]["mx2"]))
    os.kill(os.getpid(), signal.SIGHUP)
    await until(lambda: live.now().inventory.names == ["mx2"])
    assert prepared.context.services.inventory.names == ["mx1"]
    parts["gates"]["mx1"].release.set()
    outcome = await execute(prepared)
    assert outcome.ok, outcome.reply.text
