"""Config mistakes that used to pass: each is an error naming where it is, all in one pass.

Every case changes one thing in a config that is otherwise good (``GOOD`` loads, with its
files present), and ``mailqbot check-config`` must name that mistake with its location.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.inventory import Inventory, parse_config
from bot.monitor.config import MonitorSection

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
[ssh]
user = "mailqbot"
known_hosts = "DIR/known_hosts"
private_key = "DIR/id_ed25519"
connect_timeout = "10s"

[[hosts]]
name = "mx1"
address = "mx1.example.com"
groups = ["edge"]

[[hosts]]
name = "relay1"
address = "10.0.0.5"
port = 2200
groups = ["core"]

[slack]
alert_channel = "C0ALERTS"

[access]
team_ids = ["T0123"]

[[access.grants]]
role = "operator"
members = ["U0AAA"]

[[access.grants]]
role = "approver"
members = ["U0BBB", "U0CCC"]

[actions.flush]
approval = true
approvals = 2
approvers = ["role:approver"]

[monitor]
interval = "1m"

[monitor.groups.edge]
interval = "30s"

[diagnose.sending_ips]
mx1 = ["203.0.113.25"]
core = ["203.0.113.26"]
"""

CASES = [
    # (what changes, the location and words the error must show)
    (("[monitor.groups.edge]", "[monitor.groups.egde]"), "monitor.groups.egde: no host is in"),
    (("core = [", "cor = ["), "diagnose.sending_ips.cor: names no host or group"),
    (('approvers = ["role:approver"]', "approvers = []"), "actions.flush.approvers: is empty"),
    (("approvals = 2", "approvals = 3"), "actions.flush.approvals: needs 3 approval(s), but"),
    (("approval = true\n", ""), "actions.flush.approvals: has no effect without approval = true"),
    (('"C0ALERTS"', '"#alerts"'), "slack.alert_channel: '#alerts' is not a channel ID"),
    (('"T0123"', '"acme"'), "access.team_ids[0]: 'acme' is not a team ID"),
    (
        ('members = ["U0AAA"]', 'members = ["U0AAA"]\nchannels = ["#ops"]'),
        "access.grants[0].channels: Value error, '#ops' is not a Slack channel id",
    ),
    (('groups = ["edge"]', 'groups = ["all"]'), "hosts[0].groups[0]: 'all' cannot name a group"),
    (('groups = ["core"]', 'groups = ["core relays"]'), "hosts[1].groups[0]: 'core relays'"),
    (('"mx1.example.com"', '"mx1 example"'), "hosts[0].address: 'mx1 example' is neither"),
    (('"10.0.0.5"', '"10.0.0.500"'), "hosts[1].address: '10.0.0.500' is neither"),
    (('"mx1.example.com"', '"10.0.0.5"\nport = 2200'), "hosts[1].address: 10.0.0.5 (port 2200)"),
    (('user = "mailqbot"', 'user = ""'), "ssh.user: is empty"),
    (("port = 2200\n", 'port = 2200\nuser = ""\n'), "hosts[1].user: is empty"),
    (("DIR/known_hosts", "DIR/nothing"), "ssh.known_hosts: DIR/nothing does not exist"),
    (("DIR/id_ed25519", "DIR/locked"), "ssh.private_key: DIR/locked cannot be read"),
    (("DIR/id_ed25519", "DIR"), "ssh.private_key: DIR is not a file"),
    (("[[access.grants]]", "[[access.nogrants]]"), "access.grants: there are none"),
    (('"10s"', "10"), "ssh.connect_timeout: 10 has no unit; write a duration with one, like 90s"),
    (('interval = "1m"', "interval = 60"), "monitor.interval: 60 has no unit"),
    (('interval = "30s"', 'interval = "30 sec"'), "monitor.groups.edge.interval: '30 sec' is not"),
    (
        ("approvals = 2", "approvals = 2\nexpires = 3600"),
        "actions.flush.expires: Value error, 3600 has no unit",
    ),
    (
        ("approvals = 2", 'approvals = 2\nexpires = "90"'),
        "actions.flush.expires: Value error, write a duration",
    ),
]


@pytest.fixture
def good(tmp_path: Path) -> str:
    (tmp_path / "known_hosts").write_text("")
    (tmp_path / "id_ed25519").write_text("")
    locked = tmp_path / "locked"
    locked.write_text("")
    locked.chmod(0)
    return GOOD.replace("DIR", str(tmp_path))


def test_the_good_config_loads(good: str) -> None:
    inventory = Inventory(parse_config(good, deployed=True, slack=True))
    assert inventory.names == ["mx1", "relay1"]
    assert inventory.config.monitor.interval_for(("edge",)) == 30.0
    assert inventory.config.ssh.connect_timeout == 10.0
    assert inventory.config.actions["flush"].lifetime == 3600  # expires = "1h", the default
    plans = good.replace("approvals = 2", 'approvals = 2\nexpires = "1h30m"')
    assert parse_config(plans, deployed=True, slack=True).actions["flush"].lifetime == 5400


@pytest.mark.parametrize(("change", "says"), CASES, ids=[c[1].split(":")[0] for c in CASES])
def test_each_mistake_is_an_error_with_its_location(
    good: str, tmp_path: Path, change: tuple[str, str], says: str
) -> None:
    if "cannot be read" in says and os.geteuid() == 0:
        pytest.skip(
            "root reads every file: see test_an_unreadable_key_is_refused_for_the_bots_user"
        )
    if "[access.nogrants]" in change[1]:  # drop every grant, and the rule that needs them
        bad = good.split("[[access.grants]]")[0] + "[monitor]\n"
    else:
        bad = good.replace(*(part.replace("DIR", str(tmp_path)) for part in change))
    assert bad != good
    with pytest.raises(ConfigError) as caught:
        parse_config(bad, "mailqbot.toml", deployed=True, slack=True)
    assert says.replace("DIR", str(tmp_path)) in caught.value.user_message


@pytest.mark.skipif(os.geteuid() != 0, reason="not root: the case above reads as this user")
def test_an_unreadable_key_is_refused_for_the_bots_user(good: str, tmp_path: Path) -> None:
    """Root reads every file, so check-config runs here as nobody, as a bot's user would."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("needs setpriv (util-linux) to run check-config as nobody")
    place = Path(tempfile.mkdtemp(prefix="mailqbot-check-"))  # pytest's tmp_path is 0700
    try:
        place.chmod(0o755)
        for name, mode in (("known_hosts", 0o644), ("id_ed25519", 0o644), ("locked", 0o600)):
            (place / name).write_text("")
            (place / name).chmod(mode)
        config = place / "mailqbot.toml"
        config.write_text(good.replace(str(tmp_path), str(place)).replace("id_ed25519", "locked"))
        config.chmod(0o644)
        run = subprocess.run(
            [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups",
             sys.executable, "-m", "bot", "check-config", str(config)],
            capture_output=True, text=True, check=False, cwd=ROOT,
        )  # fmt: skip
    finally:
        shutil.rmtree(place)
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"ssh.private_key: {place}/locked cannot be read by this user" in run.stderr
    assert "1 problem(s)" in run.stderr
    assert "Traceback" not in run.stderr


def test_all_mistakes_are_reported_in_one_pass(good: str, tmp_path: Path) -> None:
    """check-config lists every mistake at once, schema errors with the rest; exit 2."""
    bad = good
    for (old, new), _says in CASES[:6]:
        bad = bad.replace(old, new, 1)
    bad = bad.replace("port = 2200", "port = -1")  # and one the schema finds
    path = tmp_path / "bad.toml"
    path.write_text(bad)
    run = subprocess.run(
        [sys.executable, "-m", "bot", "check-config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2
    assert f"{path}: 6 problem(s):" in run.stderr
    for where in ("monitor.groups.egde", "diagnose.sending_ips.cor", "actions.flush.approvers"):
        assert f"  - {where}: " in run.stderr
    assert "hosts[1].port: Input should be greater than or equal to 1" in run.stderr
    assert "Traceback" not in run.stderr


def test_files_and_grants_are_checked_only_where_the_bot_runs(good: str) -> None:
    """A config written elsewhere (another machine's paths, no grants yet) still parses;
    the terminal console (trusted as admin) needs no grants."""
    elsewhere = good.replace("/known_hosts", "/absent").split("[[access.grants]]")[0]
    assert parse_config(elsewhere + "[monitor]\n").access.grants == []
    console = good.split("[[access.grants]]")[0] + "[monitor]\n"
    assert parse_config(console, deployed=True).access.grants == []


# -- [ssh.groups.NAME]: a group's SSH settings are checked as [ssh]'s and a host's are -------


@pytest.mark.parametrize(
    ("section", "says"),
    [
        ('known_hosts = "DIR/nothing"', "ssh.groups.core.known_hosts: DIR/nothing does not exist"),
        ('private_key = "DIR"', "ssh.groups.core.private_key: DIR is not a file"),
        ('user = ""', "ssh.groups.core.user: is empty"),
    ],
)
def test_a_groups_ssh_settings_are_checked(
    good: str, tmp_path: Path, section: str, says: str
) -> None:
    fine = good + '\n[ssh.groups.core]\nknown_hosts = "DIR/known_hosts"\n'
    parse_config(fine.replace("DIR", str(tmp_path)), deployed=True, slack=True)
    bad = good + f"\n[ssh.groups.core]\n{section}\n".replace("DIR", str(tmp_path))
    with pytest.raises(ConfigError) as caught:
        parse_config(bad, "mailqbot.toml", deployed=True, slack=True)
    assert says.replace("DIR", str(tmp_path)) in caught.value.user_message


def test_duplicate_addresses_compare_the_port_a_group_gives(good: str) -> None:
    """mx1 is mx1.example.com:22 and relay1 10.0.0.5:2200; a host in group dmz takes its port."""

    def with_dmz_host(address: str, port: int) -> str:
        return (
            good
            + f"\n[ssh.groups.dmz]\nport = {port}\n"
            + f'\n[[hosts]]\nname = "dmz1"\naddress = "{address}"\ngroups = ["dmz"]\n'
        )

    config = parse_config(with_dmz_host("mx1.example.com", 2222), deployed=True, slack=True)
    assert len(config.hosts) == 3  # mx1.example.com on another port: another sshd
    with pytest.raises(ConfigError) as caught:
        parse_config(with_dmz_host("10.0.0.5", 2200), deployed=True, slack=True)
    assert "hosts[2].address: 10.0.0.5 (port 2200) is already host 'relay1'" in (
        caught.value.user_message
    )


# -- monitor rules: a group's rules merge with the defaults; every rule can be switched off --

RULES = """
[monitor.rules.growth]
warning = 50
critical = 200

[monitor.rules.oldest_age]
warning = 3600
critical = 86400

[monitor.groups.edge.rules.deferred]
warning = 5000
critical = 20000

[monitor.groups.edge.rules.unreachable]
enabled = false
"""


def _monitor(text: str) -> MonitorSection:
    import tomllib

    return MonitorSection.model_validate(tomllib.loads(text)["monitor"])


def test_group_rules_merge_with_the_defaults() -> None:
    monitor = _monitor(RULES)
    edge, other = monitor.rules_for(("edge",)), monitor.rules_for(("core",))
    assert edge.deferred is not None
    assert edge.deferred.warning == 5000
    assert edge.growth is not None
    assert edge.growth.warning == 50
    assert edge.oldest_age is not None
    assert edge.oldest_age.critical == 86400
    assert edge.unreachable is None  # switched off for the group only
    assert other.unreachable is not None
    assert other.deferred is not None
    assert other.deferred.warning == 1000


def test_every_rule_can_be_switched_off() -> None:
    names = ("deferred", "growth", "oldest_age", "spool_kib", "reason_spike", "unreachable")
    text = "".join(f"[monitor.rules.{name}]\nenabled = false\n" for name in names)
    rules = _monitor(text).rules_for(())
    assert all(getattr(rules, name) is None for name in names)


def test_the_readme_example_keeps_the_default_rules() -> None:
    """The documented [monitor] example (docs/ops/monitoring.md): its group override no
    longer drops the other rules."""
    readme = (Path(__file__).resolve().parents[2] / "docs/ops/monitoring.md").read_text()
    block = readme.split("\n[monitor]\n", 1)[1].split("```", 1)[0]
    monitor = _monitor("[monitor]\n" + block)
    base = monitor.rules_for(())
    for group in monitor.groups:
        merged = monitor.rules_for((group,))
        for name in ("deferred", "growth", "oldest_age", "unreachable"):
            if getattr(base, name) is not None and name not in (
                monitor.groups[group].rules.model_fields_set if monitor.groups[group].rules else ()
            ):
                assert getattr(merged, name) == getattr(base, name), (group, name)
