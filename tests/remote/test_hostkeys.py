"""``mailqbot hosts scan`` against real in-process SSH servers: many hosts, new, pinned and
changed keys, what --accept and --replace write, and the fingerprints as ssh-keygen prints."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncssh
import pytest

from bot import cli
from bot.demo.ssh import ClientKey, ScriptedSSHServer, SilentTCPServer, static_handler, unused_port
from bot.inventory import Host
from bot.remote import hostkeys

FLEET = 12


@pytest.fixture
async def fleet(client_key: ClientKey) -> AsyncIterator[list[ScriptedSSHServer]]:
    servers = [ScriptedSSHServer(static_handler(), client_key.public_key) for _ in range(FLEET)]
    await asyncio.gather(*(s.start() for s in servers))
    yield servers
    await asyncio.gather(*(s.close() for s in servers))


def hosts_for(servers: list[ScriptedSSHServer], known_hosts: Path, make: Callable[..., Host]):
    return [
        make(server, name=f"mx{i:02d}", known_hosts=known_hosts) for i, server in enumerate(servers)
    ]


def config_for(tmp_path: Path, servers: list[ScriptedSSHServer], client_key: ClientKey) -> Path:
    lines = [
        "[ssh]",
        f'private_key = "{client_key.private_key}"',
        f'known_hosts = "{tmp_path / "known_hosts"}"',
        'connect_timeout = "3s"',
        'login_timeout = "3s"',
    ]
    for i, server in enumerate(servers):
        group = "even" if i % 2 == 0 else "odd"
        lines += ["[[hosts]]", f'name = "mx{i:02d}"', 'address = "127.0.0.1"']
        lines += [f"port = {server.port}", f'groups = ["{group}"]']
    path = tmp_path / "mailqbot.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def mailqbot(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """The real command line, in a thread (it runs its own event loop)."""
    status = await asyncio.to_thread(cli.main, list(argv))
    return status, capsys.readouterr().out


async def test_new_keys_are_shown_and_written_only_with_accept(
    fleet: list[ScriptedSSHServer], tmp_path: Path, client_key: ClientKey,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    config = config_for(tmp_path, fleet, client_key)
    known_hosts = tmp_path / "known_hosts"
    status, out = await mailqbot(capsys, "hosts", "scan", "all", "--config", str(config))
    assert status == 1
    assert not known_hosts.exists()
    rows = [line.split() for line in out.splitlines()[1 : FLEET + 1]]
    assert [row[0] for row in rows] == [f"mx{i:02d}" for i in range(FLEET)]
    for row, server in zip(rows, fleet, strict=True):
        assert row[1:5] == [
            f"[127.0.0.1]:{server.port}",
            "ssh-ed25519",
            server.host_key_fingerprint(),
            "new",
        ]
    # the columns line up: every fingerprint starts in the same column
    starts = {line.index("SHA256:") for line in out.splitlines()[1 : FLEET + 1]}
    assert len(starts) == 1
    assert f"{FLEET} host(s): 0 already pinned, {FLEET} new, 0 changed, 0 failed" in out

    status, out = await mailqbot(
        capsys, "hosts", "scan", "odd", "--accept", "--config", str(config)
    )
    assert status == 0
    assert f"wrote {FLEET // 2} key(s) to {known_hosts}" in out
    assert sorted(known_hosts.read_text().splitlines()) == sorted(
        fleet[i].known_hosts_line().strip() for i in range(1, FLEET, 2)
    )
    status, out = await mailqbot(capsys, "hosts", "scan", "all", "--config", str(config))
    assert status == 1  # the even ones are still new
    assert f"{FLEET // 2} already pinned, {FLEET // 2} new" in out


async def test_pinned_keys_let_the_executor_connect(
    fleet: list[ScriptedSSHServer], tmp_path: Path, host_for: Callable[..., Host]
) -> None:
    from bot.remote.command import RemoteCommand
    from bot.remote.ssh import SSHExecutor

    hosts = hosts_for(fleet[:3], tmp_path / "kh", host_for)
    report = await hostkeys.scan_and_pin(hosts, accept=True, replace=False)
    assert [r.status for r in report.results] == ["added"] * 3
    async with SSHExecutor() as executor:
        for host in hosts:
            result = await executor.run(host, RemoteCommand(argv=("true",)))
            assert result.host_key_fingerprint == report.results[hosts.index(host)].fingerprint


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")
async def test_fingerprints_are_ssh_keygens(
    fleet: list[ScriptedSSHServer], tmp_path: Path, host_for: Callable[..., Host]
) -> None:
    host = host_for(fleet[0], known_hosts=tmp_path / "kh")
    [result] = await hostkeys.scan([host])
    pub = tmp_path / "key.pub"
    fleet[0].host_key.write_public_key(str(pub))
    printed = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True)
    assert printed.stdout.split()[1] == result.fingerprint


async def test_a_changed_key_is_never_replaced_without_replace(
    fleet: list[ScriptedSSHServer], tmp_path: Path, client_key: ClientKey,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    config = config_for(tmp_path, fleet[:2], client_key)
    known_hosts = tmp_path / "known_hosts"
    old = asyncssh.generate_private_key("ssh-ed25519")
    old_line = f"[127.0.0.1]:{fleet[0].port} " + old.export_public_key().decode().strip()
    other = "[192.0.2.9]:22 " + old.export_public_key().decode().strip()  # another host's
    known_hosts.write_text(f"# pinned by hand\n{old_line}\n{other}\n")
    before = known_hosts.read_text()

    status, out = await mailqbot(
        capsys, "hosts", "scan", "mx00", "--accept", "--config", str(config)
    )
    assert status == 1
    assert known_hosts.read_text() == before
    new_fp, old_fp = fleet[0].host_key_fingerprint(), old.get_fingerprint()
    changed = next(line for line in out.splitlines() if line.startswith("mx00"))
    assert new_fp in changed
    assert "changed" in changed
    assert any(old_fp in line and "pinned" in line for line in out.splitlines())
    assert "changed keys were NOT replaced" in out

    status, out = await mailqbot(
        capsys, "hosts", "scan", "mx00", "--replace", "--config", str(config)
    )
    assert status == 2
    assert known_hosts.read_text() == before

    status, out = await mailqbot(
        capsys, "hosts", "scan", "mx00", "--accept", "--replace", "--config", str(config)
    )
    assert status == 0
    assert any(new_fp in line and "replaced" in line for line in out.splitlines())
    assert any(old_fp in line and "was" in line for line in out.splitlines())
    assert known_hosts.read_text() == f"# pinned by hand\n{other}\n" + fleet[0].known_hosts_line()


async def test_a_changed_key_pinned_by_a_pattern_is_left_for_a_person(
    fleet: list[ScriptedSSHServer], tmp_path: Path, host_for: Callable[..., Host]
) -> None:
    known_hosts = tmp_path / "kh"
    old = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    known_hosts.write_text(f"[127.0.0.1]:*,mx.example {old}\n")
    host = host_for(fleet[0], known_hosts=known_hosts)
    report = await hostkeys.scan_and_pin([host], accept=True, replace=True)
    [result] = report.results
    assert result.status == "error"
    assert "edit it by hand" in result.error
    assert known_hosts.read_text() == f"[127.0.0.1]:*,mx.example {old}\n"


async def test_hashed_pins_are_recognised(
    fleet: list[ScriptedSSHServer], tmp_path: Path, host_for: Callable[..., Host]
) -> None:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("needs ssh-keygen to hash known_hosts")
    known_hosts = tmp_path / "kh"
    fleet[0].write_known_hosts(known_hosts)
    subprocess.run(["ssh-keygen", "-Hf", str(known_hosts)], check=True, capture_output=True)
    assert known_hosts.read_text().startswith("|1|")
    [result] = await hostkeys.scan([host_for(fleet[0], known_hosts=known_hosts)])
    assert result.status == "pinned"


async def test_unreachable_hosts_fail_with_a_reason_and_do_not_stop_the_rest(
    fleet: list[ScriptedSSHServer], tmp_path: Path, host_for: Callable[..., Host]
) -> None:
    known_hosts = tmp_path / "kh"
    async with SilentTCPServer() as silent:
        hosts = [
            host_for(fleet[0], known_hosts=known_hosts),
            host_for(None, name="closed", port=unused_port(), known_hosts=known_hosts),
            host_for(silent, name="silent", port=silent.port, known_hosts=known_hosts,
                     connect_timeout=0.3, login_timeout=0.3),
        ]  # fmt: skip
        report = await hostkeys.scan_and_pin(hosts, accept=True, replace=False)
    statuses = {r.host.name: (r.status, r.error) for r in report.results}
    assert statuses["mx1"] == ("added", "")
    assert statuses["closed"][0] == "error"
    assert "Connection refused" in statuses["closed"][1]
    assert statuses["silent"] == (
        "error",
        f"no SSH answer from 127.0.0.1:{hosts[2].port} within 0.6 s",
    )
    assert hostkeys.exit_status(report) == 1
    text = hostkeys.render(report)
    assert "1 new, 0 changed, 2 failed" in text
