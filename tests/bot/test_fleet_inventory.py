"""An inventory at fleet scale: hosts from included files, SSH settings per host group,
"did you mean" for a mistyped host, and host lists that fit Slack at 1,000 hosts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot import render
from bot.errors import ConfigError, UnknownHost
from bot.inventory import Inventory, load_config, parse_config
from bot.render import limits
from commands.help import HelpEntry, HelpModel, _first

MAIN = """
include = ["hosts.d/*.toml"]

[ssh]
known_hosts = "/etc/mailqbot/known_hosts"

[[hosts]]
name = "mx1"
address = "192.0.2.1"
"""


def host(name: str, address: str, *groups: str) -> str:
    return f'[[hosts]]\nname = "{name}"\naddress = "{address}"\ngroups = {json.dumps(groups)}\n'


def write(tmp_path: Path, files: dict[str, str], main: str = MAIN) -> Path:
    (tmp_path / "hosts.d").mkdir(exist_ok=True)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    config = tmp_path / "mailqbot.toml"
    config.write_text(main)
    return config


def test_included_files_add_hosts_relative_to_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path, {
        "hosts.d/edge.toml": host("edge1", "192.0.2.10", "edge")
        + host("edge2", "192.0.2.11", "edge"),
        "hosts.d/core.toml": host("core1", "192.0.2.20", "core"),
        "hosts.d/notes.txt": "not included",
    })  # fmt: skip
    monkeypatch.chdir("/")  # patterns are relative to the config file, not the working directory
    inventory = Inventory(load_config(config))
    assert inventory.names == ["core1", "edge1", "edge2", "mx1"]
    assert inventory.groups == {"core": ["core1"], "edge": ["edge1", "edge2"]}


def test_included_files_problems_all_name_their_file(tmp_path: Path) -> None:
    config = write(tmp_path, {
        "hosts.d/a.toml": host("edge1", "192.0.2.10") + '[[hosts]]\nname = "Bad Name"\n',
        "hosts.d/b.toml": host("mx1", "192.0.2.99") + "[slack]\nalert_channel = 'C1'\n",
        "hosts.d/c.toml": "[[hosts]\nname=",
    })  # fmt: skip
    main = MAIN.replace('["hosts.d/*.toml"]', '["hosts.d/*.toml", "more/*.toml", "/etc/*.toml"]')
    config.write_text(main)
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    message = raised.value.user_message
    a, b, c = (str(tmp_path / "hosts.d" / n) for n in ("a.toml", "b.toml", "c.toml"))
    expected = [
        f"{a}: hosts[1].name: Value error, use lower-case letters",
        f"{a}: hosts[1].address: Field required",
        f"{b}: slack: an included file holds [[hosts]] only",
        f"{b}: hosts[0]: host 'mx1' is also defined in {config}",
        f"{c}: not valid TOML",
        f"include 'more/*.toml' matches no file in {tmp_path}",
        "include '/etc/*.toml': write a pattern inside",
    ]
    for part in expected:
        assert part in message, part
    assert message.startswith(f"{config}: 7 problem(s) in included files:")


def test_ssh_settings_per_group_merge_over_the_defaults() -> None:
    config = parse_config("""
[ssh]
user = "mailqbot"
known_hosts = "/etc/mailqbot/known_hosts"
private_key = "/etc/mailqbot/id_ed25519"

[ssh.groups.dmz]
user = "mq-dmz"
port = 2222
known_hosts = "/etc/mailqbot/known_hosts.dmz"

[ssh.groups.legacy]
sudo = false

[[hosts]]
name = "a"
address = "192.0.2.1"
groups = ["dmz", "legacy"]

[[hosts]]
name = "b"
address = "192.0.2.2"
groups = ["legacy"]
port = 2200

[[hosts]]
name = "c"
address = "192.0.2.3"
groups = ["dmz"]
user = "own"
""")
    inv = Inventory(config)
    a, b, c = inv.get("a"), inv.get("b"), inv.get("c")
    # a: its first group with a section (dmz) wins; sudo stays the default (dmz sets none)
    assert (a.user, a.port, str(a.known_hosts), a.sudo) == (
        "mq-dmz",
        2222,
        "/etc/mailqbot/known_hosts.dmz",
        True,
    )
    assert (b.user, b.port, str(b.known_hosts), b.sudo) == (
        "mailqbot",
        2200,
        "/etc/mailqbot/known_hosts",
        False,
    )
    assert (c.user, c.port, str(c.private_key)) == ("own", 2222, "/etc/mailqbot/id_ed25519")


def test_ssh_groups_must_name_a_group() -> None:
    with pytest.raises(ConfigError, match=r"ssh\.groups names no host group: dzm"):
        parse_config(
            '[ssh]\nknown_hosts = "/k"\n[ssh.groups.dzm]\nport = 2\n'
            + host("a", "192.0.2.1", "dmz")
        )


def test_a_group_can_carry_the_known_hosts_file() -> None:
    text = "[ssh.groups.dmz]\nknown_hosts = '/k'\n" + host("a", "192.0.2.1", "dmz")
    assert str(Inventory(parse_config(text)).get("a").known_hosts) == "/k"
    with pytest.raises(ConfigError, match="host 'b' has no known_hosts file"):
        parse_config(text + host("b", "192.0.2.2"))


def fleet(n: int = 1000) -> Inventory:
    text = '[ssh]\nknown_hosts = "/k"\n' + "".join(
        host(f"mx{i:04d}", f"10.0.{i // 250}.{i % 250 + 1}", f"dc{i % 40}") for i in range(n)
    )
    return Inventory(parse_config(text))


def test_did_you_mean_a_mistyped_host() -> None:
    inv = fleet(50)
    with pytest.raises(UnknownHost, match=r"Unknown host `mx0O12`\. Did you mean `mx0012`"):
        inv.select("mx0O12")
    with pytest.raises(UnknownHost, match=r"Did you mean `dc17`"):
        inv.select("dc-17")
    with pytest.raises(UnknownHost) as raised:
        inv.select("zzz")
    assert "Did you mean" not in raised.value.user_message


def texts(blocks: list[dict[str, object]]) -> list[str]:
    found: list[str] = []

    def walk(obj: object) -> None:
        if isinstance(obj, dict):
            if isinstance(obj.get("text"), str):
                found.append(obj["text"])  # type: ignore[arg-type]
            for value in obj.values():
                walk(value)
        elif isinstance(obj, list):
            for value in obj:
                walk(value)

    walk(blocks)
    return found


def test_host_lists_fit_slack_at_1000_hosts() -> None:
    inv = fleet(1000)
    with pytest.raises(UnknownHost) as raised:
        inv.select("nowhere")
    message = raised.value.user_message
    assert "mx0024 and 975 more." in message
    assert "Groups: dc0, dc1," in message
    assert "and 16 more." in message
    assert len(message) < 1000
    shown = render.error(raised.value)
    model = HelpModel([HelpEntry("summary", "/mailq summary HOST", "s", ())],
                      _first(inv.names), _first(list(inv.groups)))  # fmt: skip
    helped = render.render("help", model)
    assert "and 975 more" in helped.text
    for rendered in (shown, helped):
        for text in texts(rendered.blocks):
            assert len(text) < limits.FIELD_TEXT
            assert not text.endswith("…")  # fits as written: nothing was cut
