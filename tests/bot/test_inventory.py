"""The config file: a full example loads; each mistake is explained with its location."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.errors import ConfigError, UnknownHost
from bot.inventory import Inventory, parse_config

GOOD = """
[ssh]
user = "mailqbot"
known_hosts = "/etc/mailqbot/known_hosts"
private_key = "/etc/mailqbot/id_ed25519"

[[hosts]]
name = "mx1"
address = "mx1.example.com"
groups = ["edge"]

[[hosts]]
name = "relay1"
address = "10.0.0.5"
port = 2200
sudo = false

[access]
team_ids = ["T0123"]

[[access.grants]]
role = "viewer"
members = ["U0AAA", "S0OPS"]
"""


def test_full_example_resolves_defaults() -> None:
    inventory = Inventory(parse_config(GOOD))
    mx1, relay = inventory.get("mx1"), inventory.get("relay1")
    assert (mx1.port, mx1.user, mx1.sudo) == (22, "mailqbot", True)
    assert (relay.port, relay.sudo) == (2200, False)
    assert inventory.groups == {"edge": ["mx1"]}
    assert [h.name for h in inventory.select("all")] == ["mx1", "relay1"]
    assert [h.name for h in inventory.select("edge")] == ["mx1"]


GRANTS = """
[[access.grants]]
role = "approver"
members = ["U0BBB"]

[[access.grants]]
role = "admin"
members = ["U0CCC"]
"""


@pytest.mark.parametrize(
    "actions",
    [
        "",
        '[actions.purge_all]\napproval = true\nexpires = "2h"\n',
        "[actions.purge]\napproval = true\napprovals = 1\n",
    ],
)
def test_purge_limits_and_purge_all_approvers_have_their_defaults(actions: str) -> None:
    """An ordinary purge of more than 5,000 messages or half the queues it selects from is
    ``purge_all``, which admins approve, whether or not the config has these sections; a
    ``[actions.purge_all]`` without ``approvers`` does not fall back to every class's
    default (approvers and admins), which let a plain approver empty a queue."""
    config = parse_config(GOOD + GRANTS + actions)
    purge, purge_all = config.actions["purge"], config.actions["purge_all"]
    assert (purge.max_messages, purge.max_share) == (5_000, 0.5)
    assert purge.approvers == ["role:approver", "role:admin"]
    assert purge_all.approval
    assert purge_all.approvers == ["role:admin"]
    named = parse_config(
        GOOD + GRANTS + '[actions.purge_all]\napproval = true\napprovers = ["U0BBB"]\n'
    )
    assert named.actions["purge_all"].approvers == ["U0BBB"]


def test_purge_limits_belong_to_purge() -> None:
    with pytest.raises(ConfigError, match=r"max_messages and max_share belong to actions\.purge"):
        parse_config(GOOD + GRANTS + "[actions.hold]\napproval = true\nmax_messages = 10\n")


def test_unknown_host_lists_the_known_ones() -> None:
    with pytest.raises(UnknownHost, match=r"Known hosts: mx1, relay1\. Groups: edge, all"):
        Inventory(parse_config(GOOD)).select("mx9")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('address = "10.0.0.5"', ""), r"hosts\[1\]\.address: Field required"),
        (("port = 2200", "port = 99999"), r"hosts\[1\]\.port: Input should be less than"),
        (('name = "relay1"', 'name = "mx1"'), "host names must be unique; repeated: mx1"),
        (('"U0AAA"', '"alice"'), r"access\.grants\[0\]\.members: .*not a Slack user id"),
        (('known_hosts = "/etc/mailqbot/known_hosts"', ""), "has no known_hosts file"),
        (('user = "mailqbot"', 'usr = "mailqbot"'), r"ssh\.usr: Extra inputs are not permitted"),
        (("[ssh]", "[ssh"), "not valid TOML"),
    ],
)
def test_mistakes_are_explained_with_their_location(change: tuple[str, str], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_config(GOOD.replace(*change), "mailqbot.toml")


def test_check_config_command(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    for name in ("known_hosts", "id_ed25519"):
        (tmp_path / name).write_text("")
    deployed = GOOD.replace("/etc/mailqbot", str(tmp_path))
    good.write_text(deployed)
    bad.write_text(deployed.replace("port = 2200", "port = -1"))
    run = [sys.executable, "-m", "bot", "check-config"]
    ok = subprocess.run([*run, str(good)], capture_output=True, text=True, check=False)
    assert ok.returncode == 0
    assert "OK: 2 host(s)" in ok.stdout
    failed = subprocess.run([*run, str(bad)], capture_output=True, text=True, check=False)
    assert failed.returncode == 2
    assert "hosts[1].port" in failed.stderr


# -- where /mailq log reads: [log] and [log.groups.NAME] ----------------------------------------

LOGS = """
[log]
source = "file"
path = "/var/log/postfix.log"

[log.groups.edge]
source = "container"
container = "mail-postfix-1"
runtime = "podman"

[log.groups.eu]
source = "journal"
unit = "postfix@-.service"
"""


def test_log_source_per_group_the_first_group_with_a_section_wins() -> None:
    config = GOOD.replace('groups = ["edge"]', 'groups = ["eu", "edge"]') + LOGS
    config = config.replace("sudo = false", 'sudo = false\ngroups = ["edge"]')
    inventory = Inventory(parse_config(config))
    mx1, relay = inventory.get("mx1").log, inventory.get("relay1").log
    assert (mx1.source, mx1.unit) == ("journal", "postfix@-.service")
    assert (relay.source, relay.container, relay.runtime) == (
        "container",
        "mail-postfix-1",
        "podman",
    )
    no_group = Inventory(
        parse_config(GOOD.replace('groups = ["edge"]', "") + LOGS.split("[log.groups")[0])
    )
    assert (no_group.get("mx1").log.source, no_group.get("mx1").log.path) == (
        "file", "/var/log/postfix.log",
    )  # fmt: skip
    assert Inventory(parse_config(GOOD)).get("mx1").log.source == "auto"


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ('[log]\nsource = "file"\n', 'source = "file" needs path'),
        ('[log]\nsource = "container"\n', 'source = "container" needs container'),
        ('[log]\npath = "/var/log/mail.log"\n', 'path does not apply to source = "auto"'),
        ('[log]\nsource = "journal"\ncontainer = "x"\n', "container does not apply"),
        ('[log]\nsource = "file"\npath = "/var/log/../../etc/shadow"\n', "absolute path"),
        ('[log]\nsource = "file"\npath = "/var/log/mail.log; rm -rf /"\n', "absolute path"),
        ('[log]\nsource = "file"\npath = "/dev/stdout"\n', "absolute path"),
        ('[log]\nsource = "journal"\nunit = "postfix*"\n', "systemd service unit"),
        ('[log]\nsource = "journal"\nunit = "--since=0 postfix.service"\n', "systemd service unit"),
        ('[log]\nsource = "container"\ncontainer = "-v"\n', "container name"),
        ('[log]\nsource = "container"\ncontainer = "x"\nruntime = "lxc"\n', "runtime"),
        ('[log]\nsource = "syslog"\n', r"log\.source"),
        ('[log]\nwhere = "x"\n', r"log\.where: Extra inputs are not permitted"),
        ('[log.groups.nowhere]\nsource = "journal"\n', "log.groups names no host group: nowhere"),
    ],
)
def test_log_source_mistakes_are_refused(section: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_config(GOOD + section)
