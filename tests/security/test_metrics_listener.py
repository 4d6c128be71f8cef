"""``/metrics`` (host names, queue counts) is never served on the Slack listener.

``mailqbot serve`` runs as its own process, in HTTP mode and in Socket Mode, with its Slack
listener on every address (as in the Docker image) and the metrics listener left at its
default address: ``/metrics`` answers on 127.0.0.1 only, the Slack port answers 404 for it
and keeps ``/healthz``, and the metrics port cannot be reached on the machine's other
address.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

from helpers.fakes import FakeSlack

MAILQBOT = Path(sys.executable).parent / "mailqbot"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def outside_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("203.0.113.1", 9))
        except OSError:
            return None
        address = str(s.getsockname()[0])
    return None if address.startswith("127.") else address


def environment(slack: FakeSlack, db_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("", encoding="ascii")
    config = tmp_path / "mailqbot.toml"
    # monitored without an alert channel (metrics only); nothing listens on its port
    config.write_text(
        f'[ssh]\nknown_hosts = "{known_hosts}"\n[[hosts]]\nname = "mx1"\naddress = "127.0.0.1"\n'
        f'port = {free_port()}\n[monitor]\ninterval = "1s"\njitter = 0\n'
        '[[access.grants]]\nrole = "viewer"\nmembers = ["U0VIEWER"]\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MAILQBOT_"))}
    return env | {
        "SLACK_BOT_TOKEN": "xoxb-metrics",
        "SLACK_SIGNING_SECRET": "metrics-test-secret",
        "SLACK_API_URL": slack.api_url,
        "DATABASE_URL": db_url,
        "MAILQBOT_CONFIG": str(config),
        "HTTP_PROXY": "",
        "HTTPS_PROXY": "",
        **extra,
    }


async def get(url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        await response.read()
        return response.status


async def until_healthy(url: str, process: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(30):
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"mailqbot serve exited with {process.returncode}")
            try:
                if await get(f"{url}/healthz") == 200:
                    return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("mode", ["http", "socket"])
async def test_metrics_only_on_their_own_loopback_listener(
    slack: FakeSlack, db_url: str, tmp_path: Path, mode: str
) -> None:
    port, metrics_port = free_port(), free_port()
    extra = {"MAILQBOT_METRICS_PORT": str(metrics_port)}  # the address is left at its default
    if mode == "socket":
        extra["SLACK_APP_TOKEN"] = "xapp-metrics"
    process = await asyncio.create_subprocess_exec(
        str(MAILQBOT), "serve", "--host", "0.0.0.0", "--port", str(port),
        env=environment(slack, db_url, tmp_path, **extra),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await until_healthy(f"http://127.0.0.1:{port}", process)
        if mode == "socket":
            await slack.wait_for("apps.connections.open", timeout=20)
        assert await get(f"http://127.0.0.1:{port}/metrics") == 404
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as response:
                assert response.status == 200
                scraped = await response.text()
            assert "# TYPE mailqbot_polls_total counter" in scraped
            assert "# TYPE mailqbot_commands_total counter" in scraped
            # monitored with no alert channel: its metrics are there all the same
            async with asyncio.timeout(20):
                while 'mailqbot_host_up{host="mx1"} 0.0' not in scraped:
                    await asyncio.sleep(0.2)
                    async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as response:
                        scraped = await response.text()
            assert 'mailqbot_poll_errors_total{host="mx1"} ' in scraped
            assert "mailqbot_queue_messages{" not in scraped
            async with http.get(f"http://127.0.0.1:{metrics_port}/healthz") as response:
                assert response.status == 404  # health stays on the Slack listener
        outside = outside_address()
        if outside is not None:
            assert await get(f"http://{outside}:{port}/healthz") == 200  # it does listen there
            assert await get(f"http://{outside}:{port}/metrics") == 404
            with pytest.raises(aiohttp.ClientConnectorError):
                await get(f"http://{outside}:{metrics_port}/metrics")
    finally:
        if process.returncode is None:
            process.terminate()
        _, stderr = await process.communicate()
    assert b"Traceback" not in stderr, stderr.decode(errors="replace")
    assert f"listening on http://127.0.0.1:{metrics_port} (/metrics)".encode() in stderr
    assert b"monitoring without Slack alerts" in stderr


async def test_a_taken_metrics_port_is_a_clear_error(
    slack: FakeSlack, db_url: str, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = int(taken.getsockname()[1])
        process = await asyncio.create_subprocess_exec(
            str(MAILQBOT), "serve", "--port", str(free_port()), "--metrics-port", str(busy),
            env=environment(slack, db_url, tmp_path),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert f"Cannot listen on 127.0.0.1:{busy} for /metrics".encode() in stderr
    assert b"port 0 for no metrics listener" in stderr
    assert b"Traceback" not in stderr
