"""Hosts, host groups, the alert channel and access grants, read from one TOML file.

The file is validated as a whole; ``load_config`` raises ``ConfigError`` listing every
problem with its location (``hosts[2].address: field required``).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot import config_checks
from bot.config_checks import Seconds
from bot.diag.config import DiagnoseSection
from bot.errors import ConfigError, UnknownHost
from bot.monitor.config import MonitorSection
from bot.retention import RetentionSection
from bot.text import DURATION_FORMS, duration_problem, parse_duration

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
Role = Literal["viewer", "operator", "approver", "admin"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SSHGroup(_Strict):
    """``[ssh.groups.NAME]``: SSH settings for the hosts of one group, over ``[ssh]``."""

    user: str | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    private_key: Path | None = None
    known_hosts: Path | None = None
    sudo: bool | None = None


class SSHDefaults(_Strict):
    """Defaults every host inherits; a host may override any of them. ``[ssh.groups.NAME]``
    sets user, port, private_key, known_hosts or sudo for a host group: a host takes its own
    setting, else that of the first of its groups with a section, else ``[ssh]``'s."""

    user: str = "mailqbot"
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    private_key: Path | None = None
    known_hosts: Path | None = None
    sudo: bool = True
    connect_timeout: Annotated[Seconds, Field(gt=0, le=300)] = 10.0
    login_timeout: Annotated[Seconds, Field(gt=0, le=300)] = 10.0
    command_timeout: Annotated[Seconds, Field(gt=0, le=3600)] = 60.0
    max_sessions: Annotated[int, Field(ge=1, le=10)] = 10  # OpenSSH's MaxSessions default
    groups: dict[str, SSHGroup] = Field(default_factory=dict)

    def for_host(self, entry: HostEntry) -> SSHGroup:
        """The host's settings: its own, else its first group's with a section, else these."""
        merged = {
            "user": self.user,
            "port": self.port,
            "private_key": self.private_key,
            "known_hosts": self.known_hosts,
            "sudo": self.sudo,
        }
        group = next((self.groups[g] for g in entry.groups if g in self.groups), None)
        for layer in (group, entry):
            if layer is None:
                continue
            for name in merged:
                value = getattr(layer, name)
                if value is not None:
                    merged[name] = value
        return SSHGroup.model_validate(merged)


class HostEntry(_Strict):
    name: str
    address: str
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    user: str | None = None
    private_key: Path | None = None
    known_hosts: Path | None = None
    sudo: bool | None = None
    groups: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.fullmatch(value) or value == "all":
            raise ValueError("use lower-case letters, digits, '.', '_' or '-' (and not 'all')")
        return value


# -- where /mailq log reads a host's Postfix log --------------------------------------------

_LOG_PATH = re.compile(r"(?:/[A-Za-z0-9_.+-]{1,255}){1,32}")
# A systemd service unit, exactly (no globbing): "postfix.service", "postfix@-.service".
SYSTEMD_UNIT = re.compile(r"[A-Za-z0-9:_.@-]{1,200}\.service")
# Docker's and Podman's container name rule: [a-zA-Z0-9][a-zA-Z0-9_.-]+
CONTAINER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
LogKind = Literal["auto", "file", "journal", "container"]


def is_plain_path(path: str) -> bool:
    """An absolute path of plain names: no spaces, shell characters, ``.`` or ``..``."""
    parts = path.split("/")
    return bool(_LOG_PATH.fullmatch(path)) and ".." not in parts and "." not in parts


class LogSource(_Strict):
    """Where ``/mailq log`` reads a host's Postfix log (``bot.postfix.logsource``).

    ``auto``: Postfix's ``maillog_file``, else ``/var/log/mail.log`` or ``/var/log/maillog``,
    else the journal's mail facility. ``file``: ``path``. ``journal``: the mail facility, or
    the systemd ``unit``'s lines. ``container``: ``runtime logs CONTAINER``.
    """

    source: LogKind = "auto"
    path: str | None = None
    unit: str | None = None
    container: str | None = None
    runtime: Literal["docker", "podman"] | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and (
            not is_plain_path(value) or value.startswith(("/dev/", "/proc/"))
        ):
            raise ValueError("write an absolute path of a regular file, like /var/log/mail.log")
        return value

    @field_validator("unit")
    @classmethod
    def _unit(cls, value: str | None) -> str | None:
        if value is not None and not SYSTEMD_UNIT.fullmatch(value):
            raise ValueError('write a systemd service unit, like "postfix@-.service"')
        return value

    @field_validator("container")
    @classmethod
    def _container(cls, value: str | None) -> str | None:
        if value is not None and not CONTAINER_NAME.fullmatch(value):
            raise ValueError("write a container name: letters, digits, '_', '.', '-'")
        return value

    @model_validator(mode="after")
    def _fields_fit_the_source(self) -> LogSource:
        allowed = {
            "auto": set(),
            "file": {"path"},
            "journal": {"unit"},
            "container": {"container", "runtime"},
        }[self.source]
        given = {name for name in ("path", "unit", "container", "runtime") if getattr(self, name)}
        if given - allowed:
            extra = ", ".join(sorted(given - allowed))
            raise ValueError(f'{extra} does not apply to source = "{self.source}"')
        if self.source == "file" and self.path is None:
            raise ValueError('source = "file" needs path')
        if self.source == "container" and self.container is None:
            raise ValueError('source = "container" needs container (its name)')
        return self


class LogSection(LogSource):
    """``[log]``: the default source, and ``[log.groups.NAME]`` for a host group. A host in
    several groups takes the first of its groups that has a section."""

    groups: dict[str, LogSource] = Field(default_factory=dict)

    def for_groups(self, groups: tuple[str, ...]) -> LogSource:
        for group in groups:
            if group in self.groups:
                return self.groups[group]
        return LogSource.model_validate(self.model_dump(exclude={"groups"}))


class Host(_Strict):
    """A host with every SSH setting resolved."""

    name: str
    address: str
    port: int
    user: str
    private_key: Path | None
    known_hosts: Path
    sudo: bool
    groups: tuple[str, ...]
    connect_timeout: float
    login_timeout: float
    command_timeout: float
    max_sessions: int
    log: LogSource = Field(default_factory=LogSource)


class Grant(_Strict):
    role: Role
    members: list[str] = Field(min_length=1)
    hosts: list[str] = Field(default_factory=lambda: ["all"])
    # None: any channel; otherwise the grant holds only in these channels (C…/G…/D…).
    channels: list[str] | None = Field(default=None, min_length=1)

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: list[str] | None) -> list[str] | None:
        for channel in value or []:
            if not re.fullmatch(r"[CGD][A-Z0-9]{2,}", channel):
                raise ValueError(f"{channel!r} is not a Slack channel id (C…, G… or D…)")
        return value

    @field_validator("members")
    @classmethod
    def _members(cls, value: list[str]) -> list[str]:
        for member in value:
            if not re.fullmatch(r"[USW][A-Z0-9]{2,}", member):
                raise ValueError(f"{member!r} is not a Slack user id (U…/W…) or user group id (S…)")
        return value


class Access(_Strict):
    team_ids: list[str] = Field(default_factory=list)
    grants: list[Grant] = Field(default_factory=list)


class SlackSection(_Strict):
    alert_channel: str | None = None


ActionClass = Literal["flush", "requeue", "hold", "release", "purge", "purge_all"]
# Deleting mail always needs a second person.
APPROVAL_ALWAYS: tuple[ActionClass, ...] = ("purge", "purge_all")
MAX_PLAN_LIFETIME = 24 * 3600


class ActionRule(_Strict):
    """How one class of action is allowed: whether it needs a plan approved by others,
    how many approvals, who may give them, and how long a plan stays valid.

    ``approvers`` lists Slack user ids (U…/W…), user group ids (S…) and ``role:NAME`` (anyone
    holding that role on the plan's host). An empty list means nobody can approve.

    ``max_messages`` and ``max_share`` (``actions.purge`` only) bound what an ordinary purge
    may delete: a plan above either (more messages, or at least that share of the queues it
    selects from) is a ``purge_all`` plan, approved under that class's rule.
    """

    approval: bool = False
    approvals: Annotated[int, Field(ge=1, le=5)] = 1
    approvers: list[str] = Field(default_factory=lambda: ["role:approver", "role:admin"])
    expires: str = "1h"
    max_messages: Annotated[int, Field(ge=1)] | None = None
    max_share: Annotated[float, Field(gt=0, le=1)] | None = None

    @field_validator("approvers")
    @classmethod
    def _approvers(cls, value: list[str]) -> list[str]:
        roles = {"role:viewer", "role:operator", "role:approver", "role:admin"}
        for who in value:
            if who not in roles and not re.fullmatch(r"[USW][A-Z0-9]{2,}", who):
                raise ValueError(f"{who!r} is not a Slack user/group id or role:NAME")
        return value

    @field_validator("expires", mode="before")
    @classmethod
    def _expires_has_a_unit(cls, value: object) -> object:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(duration_problem(value))
        return value

    @field_validator("expires")
    @classmethod
    def _expires(cls, value: str) -> str:
        seconds = parse_duration(value)
        if seconds is None or seconds > MAX_PLAN_LIFETIME:
            raise ValueError(f"write a duration like {DURATION_FORMS}, at most 24h")
        return value

    @property
    def lifetime(self) -> int:
        seconds = parse_duration(self.expires)
        assert seconds is not None
        return seconds


# What an ordinary purge may delete before it counts as wiping the queue (purge_all).
PURGE_MAX_MESSAGES = 5_000
PURGE_MAX_SHARE = 0.5
# Who approves a purge_all plan unless [actions.purge_all] names approvers itself.
PURGE_ALL_APPROVERS = ("role:admin",)


def _default_actions() -> dict[ActionClass, ActionRule]:
    return {
        "purge": ActionRule(
            approval=True, max_messages=PURGE_MAX_MESSAGES, max_share=PURGE_MAX_SHARE
        ),
        "purge_all": ActionRule(approval=True, approvers=list(PURGE_ALL_APPROVERS)),
    }


class Config(_Strict):
    include: list[str] = Field(default_factory=list)  # resolved by load_config
    ssh: SSHDefaults = Field(default_factory=SSHDefaults)
    hosts: list[HostEntry] = Field(min_length=1)
    slack: SlackSection = Field(default_factory=SlackSection)
    monitor: MonitorSection = Field(default_factory=MonitorSection)
    diagnose: DiagnoseSection = Field(default_factory=DiagnoseSection)
    access: Access = Field(default_factory=Access)
    actions: dict[ActionClass, ActionRule] = Field(default_factory=_default_actions)
    log: LogSection = Field(default_factory=LogSection)
    retention: RetentionSection = Field(default_factory=RetentionSection)

    @model_validator(mode="after")
    def _approval_for_deletes(self) -> Config:
        for name in APPROVAL_ALWAYS:
            rule = self.actions.get(name)
            if rule is None:
                self.actions[name] = _default_actions()[name]
            elif not rule.approval:
                raise ValueError(
                    f"actions.{name}.approval cannot be false: deleting mail "
                    "always needs a second person"
                )
        purge_all = self.actions["purge_all"]
        if "approvers" not in purge_all.model_fields_set:
            # a section that only changes, say, expires keeps admins as the approvers, not
            # every class's default (which would let a plain approver empty a queue)
            self.actions["purge_all"] = purge_all.model_copy(
                update={"approvers": list(PURGE_ALL_APPROVERS)}
            )
        purge = self.actions["purge"]
        self.actions["purge"] = purge.model_copy(update={
            "max_messages": purge.max_messages or PURGE_MAX_MESSAGES,
            "max_share": purge.max_share or PURGE_MAX_SHARE,
        })  # fmt: skip
        for name, rule in self.actions.items():
            if name != "purge" and (rule.max_messages or rule.max_share):
                raise ValueError(
                    f"actions.{name}: max_messages and max_share belong to actions.purge "
                    "(they decide when a purge counts as purge_all)"
                )
        return self

    @model_validator(mode="after")
    def _unique(self) -> Config:
        names = [h.name for h in self.hosts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"host names must be unique; repeated: {', '.join(dupes)}")
        clash = sorted({g for h in self.hosts for g in h.groups} & set(names))
        if clash:
            raise ValueError(f"a group may not share a host's name: {', '.join(clash)}")
        targets = {"all", *names, *(g for h in self.hosts for g in h.groups)}
        for i, grant in enumerate(self.access.grants):
            unknown = sorted(set(grant.hosts) - targets)
            if unknown:
                raise ValueError(
                    f"access.grants[{i}].hosts names no host or group: {', '.join(unknown)}"
                )
        unknown = sorted(set(self.log.groups) - {g for h in self.hosts for g in h.groups})
        if unknown:
            raise ValueError(f"log.groups names no host group: {', '.join(unknown)}")
        unknown = sorted(set(self.ssh.groups) - {g for h in self.hosts for g in h.groups})
        if unknown:
            raise ValueError(f"ssh.groups names no host group: {', '.join(unknown)}")
        for host in self.hosts:
            if self.ssh.for_host(host).known_hosts is None:
                raise ValueError(
                    f"host {host.name!r} has no known_hosts file: set ssh.known_hosts "
                    "or the host's known_hosts (host keys are always verified)"
                )
        return self


class Inventory:
    """The resolved hosts and groups, looked up by name."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._hosts = {entry.name: _resolve(entry, config) for entry in config.hosts}

    @property
    def names(self) -> list[str]:
        return sorted(self._hosts)

    @property
    def groups(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for host in self._hosts.values():
            for group in host.groups:
                groups.setdefault(group, []).append(host.name)
        return {g: sorted(members) for g, members in sorted(groups.items())}

    def get(self, name: str) -> Host:
        try:
            return self._hosts[name]
        except KeyError:
            raise UnknownHost(name, self.names) from None

    def select(self, target: str) -> list[Host]:
        """A host name, a group name, or ``all``."""
        if target == "all":
            return [self._hosts[n] for n in self.names]
        if target in self._hosts:
            return [self._hosts[target]]
        members = self.groups.get(target)
        if members:
            return [self._hosts[n] for n in members]
        raise UnknownHost(target, self.names, list(self.groups))


def _resolve(entry: HostEntry, config: Config) -> Host:
    ssh = config.ssh
    chosen = ssh.for_host(entry)
    assert chosen.known_hosts is not None  # checked by Config._unique
    assert chosen.user is not None
    assert chosen.port is not None
    assert chosen.sudo is not None
    return Host(
        name=entry.name,
        address=entry.address,
        port=chosen.port,
        user=chosen.user,
        private_key=chosen.private_key,
        known_hosts=chosen.known_hosts,
        sudo=chosen.sudo,
        groups=tuple(entry.groups),
        connect_timeout=ssh.connect_timeout,
        login_timeout=ssh.login_timeout,
        command_timeout=ssh.command_timeout,
        max_sessions=ssh.max_sessions,
        log=config.log.for_groups(tuple(entry.groups)),
    )


def parse_config(
    text: str,
    source: str = "<config>",
    base: Path | None = None,
    *,
    deployed: bool = False,
    slack: bool = False,
) -> Config:
    """The config in ``text``; ``include`` patterns are read relative to ``base`` (the config
    file's directory; without it, ``include`` is refused). ``deployed``: also check what must
    hold where the bot runs (its files readable), ``slack``: and that some grant is given, as
    ``check-config`` and start-up do (``bot.config_checks``)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    if raw.get("include"):
        raw = _with_includes(raw, source, base)
    found = config_checks.problems(raw, deployed=deployed, slack=slack)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_explain(source, _schema_problems(exc) + found)) from None
    if found:
        raise ConfigError(_explain(source, found))
    return config


def load_config(path: Path, *, deployed: bool = False, slack: bool = False) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read the config file {path}: {exc.strerror}. "
            "Set MAILQBOT_CONFIG to the path of your mailqbot.toml."
        ) from None
    return parse_config(text, str(path), path.parent, deployed=deployed, slack=slack)


# -- include = ["hosts.d/*.toml"]: hosts from more files ------------------------------------


def _with_includes(raw: dict[str, Any], source: str, base: Path | None) -> dict[str, Any]:
    """``raw`` with the ``[[hosts]]`` of every included file appended (files in name order,
    each pattern relative to ``base``). An included file holds ``[[hosts]]`` only. Every
    problem is reported at once, each naming its file."""
    patterns = raw["include"]
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise ConfigError(
            f'{source}: include: write a list of file patterns, like ["hosts.d/*.toml"]'
        )
    if base is None:
        raise ConfigError(f"{source}: include needs the config to be read from a file")
    problems: list[str] = []
    origin = {h.get("name"): source for h in raw.get("hosts", []) if isinstance(h, dict)}
    hosts = list(raw.get("hosts", []))
    for pattern in patterns:
        if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            problems.append(
                f"include {pattern!r}: write a pattern inside {base}, like hosts.d/*.toml"
            )
            continue
        files = sorted(p for p in base.glob(pattern) if p.is_file())
        if not files:
            problems.append(f"include {pattern!r} matches no file in {base}")
        for path in files:
            problems += _include_file(path, hosts, origin)
    if problems:
        raise ConfigError(
            f"{source}: {len(problems)} problem(s) in included files:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
    return {**raw, "hosts": hosts}


def _include_file(path: Path, hosts: list[Any], origin: dict[Any, str]) -> list[str]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return [f"{path}: cannot read it: {exc.strerror}"]
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        return [f"{path}: not valid TOML: {exc}"]
    problems = [
        f"{path}: {key}: an included file holds [[hosts]] only; put [{key}] in the main config"
        for key in sorted(set(data) - {"hosts"})
    ]
    entries = data.get("hosts", [])
    if not isinstance(entries, list):
        return [*problems, f"{path}: hosts: write [[hosts]] tables"]
    for i, entry in enumerate(entries):
        try:
            host = HostEntry.model_validate(entry)
        except ValidationError as exc:
            problems += [
                f"{path}: hosts[{i}].{line.strip()[2:]}"
                for line in _explain("", _schema_problems(exc)).splitlines()[1:]
            ]
            continue
        if host.name in origin:
            problems.append(
                f"{path}: hosts[{i}]: host {host.name!r} is also defined in {origin[host.name]}"
            )
            continue
        origin[host.name] = str(path)
        hosts.append(entry)
    return problems


def _schema_problems(exc: ValidationError) -> list[str]:
    found = []
    for err in exc.errors():
        where = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in err["loc"]
        ).lstrip(".")
        found.append(f"{where or '(top level)'}: {err['msg']}")
    return found


def _explain(source: str, found: list[str]) -> str:
    return "\n".join([f"{source}: {len(found)} problem(s):", *(f"  - {p}" for p in found)])
