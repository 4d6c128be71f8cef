"""``mailqbot hosts scan``: fetch host keys over SSH, compare them with known_hosts, pin them.

A scan asks each host for the key the bot's own connection would check: the first key type
asyncssh negotiates, or, where known_hosts already pins a key, a key of the pinned type
(asyncssh's client offers only the pinned types, so that is the key a connection meets).
It prints each key's SHA256 fingerprint as ``ssh-keygen -lf`` does, so an operator can compare
it out of band with ``ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`` on the host.

Nothing is written without ``accept``. A host whose key differs from the pinned one is never
changed unless ``replace`` is given too, and then the old and the new fingerprints are both
shown. Writes go to a temporary file renamed over the old one (same mode), one write per file.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import asyncssh

from bot.inventory import Host
from bot.text import table

Status = Literal["new", "pinned", "changed", "added", "replaced", "error"]
SCAN_CONCURRENCY = 16  # hosts asked at once (under OpenSSH's MaxStartups 10:30:100 start)


@dataclass(frozen=True)
class ScanResult:
    """One host's answer: the key it offered, and the keys known_hosts pins for it."""

    host: Host
    key: asyncssh.SSHKey | None = None
    pinned: tuple[asyncssh.SSHKey, ...] = ()
    error: str = ""
    written: bool = False

    @property
    def status(self) -> Status:
        if self.key is None or self.error:
            return "error"
        if not self.pinned:
            return "added" if self.written else "new"
        if any(_same(self.key, old) for old in self.pinned):
            return "pinned"
        return "replaced" if self.written else "changed"

    @property
    def fingerprint(self) -> str:
        return self.key.get_fingerprint("sha256") if self.key is not None else ""


@dataclass
class ScanReport:
    results: list[ScanResult] = field(default_factory=list)
    files: dict[Path, int] = field(default_factory=dict)  # known_hosts file -> lines written

    def count(self, *statuses: Status) -> int:
        return sum(r.status in statuses for r in self.results)


def _same(a: asyncssh.SSHKey, b: asyncssh.SSHKey) -> bool:
    return bool(a.public_data == b.public_data)


def host_token(host: Host) -> str:
    """How known_hosts names the host: ``address``, or ``[address]:port`` off port 22."""
    return host.address if host.port == 22 else f"[{host.address}]:{host.port}"


def pinned_keys(host: Host, text: str) -> tuple[asyncssh.SSHKey, ...]:
    """The keys ``text`` (a known_hosts file) trusts for ``host``, as the executor checks."""
    if not text.strip():
        return ()
    trusted = asyncssh.import_known_hosts(text).match(host.address, host.address, host.port)[0]
    return tuple(trusted)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


async def fetch_key(host: Host, algorithms: Sequence[str] = ()) -> asyncssh.SSHKey:
    """The host key the server offers (of one of ``algorithms`` if given)."""
    async with asyncio.timeout(host.connect_timeout + host.login_timeout):
        key = await asyncssh.get_server_host_key(
            host.address,
            host.port,
            config=None,
            server_host_key_algs=list(algorithms) if algorithms else (),
        )
    if key is None:
        raise asyncssh.Error(asyncssh.DISC_HOST_KEY_NOT_VERIFIABLE, "the server sent no host key")
    return key


def _algorithms(keys: Iterable[asyncssh.SSHKey]) -> list[str]:
    algs: list[str] = []
    for key in keys:
        for alg in key.sig_algorithms:
            name = alg.decode("ascii")
            if name not in algs and "@ssh.com" not in name:
                algs.append(name)
    return algs


def _why(host: Host, exc: BaseException) -> str:
    where = f"{host.address}:{host.port}"
    if isinstance(exc, TimeoutError):
        return f"no SSH answer from {where} within {host.connect_timeout + host.login_timeout:g} s"
    if isinstance(exc, asyncssh.KeyExchangeFailed):
        return f"{where} offers no host key of the pinned type ({exc.reason})"
    if isinstance(exc, asyncssh.Error):
        return f"SSH handshake with {where} failed: {exc.reason}"
    if isinstance(exc, OSError):
        return f"cannot reach {where}: {os.strerror(exc.errno) if exc.errno else exc}"
    return f"{where}: {exc}"


RETRY_AFTER = 0.5  # seconds before asking again a host that dropped the handshake


async def scan_host(host: Host) -> ScanResult:
    """The host's key; a handshake the server dropped (sshd's MaxStartups under a burst of
    connections) is tried once more."""
    pinned = pinned_keys(host, _read(host.known_hosts))
    for attempt in (1, 2):
        try:
            key = await fetch_key(host, _algorithms(pinned))
        except asyncssh.ConnectionLost as exc:
            if attempt == 1:
                await asyncio.sleep(RETRY_AFTER)
                continue
            return ScanResult(host, None, pinned, _why(host, exc))
        except (asyncssh.Error, OSError, TimeoutError, ValueError) as exc:
            return ScanResult(host, None, pinned, _why(host, exc))
        return ScanResult(host, key, pinned)
    raise AssertionError("unreachable")


async def scan(
    hosts: Sequence[Host],
    *,
    progress: Callable[[int, int], None] | None = None,
    concurrency: int = SCAN_CONCURRENCY,
) -> list[ScanResult]:
    """Every host's key, in the order given; ``progress(done, total)`` after each host."""
    gate = asyncio.Semaphore(concurrency)
    done = 0

    async def one(host: Host) -> ScanResult:
        nonlocal done
        async with gate:
            result = await scan_host(host)
        done += 1
        if progress is not None:
            progress(done, len(hosts))
        return result

    return list(await asyncio.gather(*(one(h) for h in hosts)))


# --- writing known_hosts -------------------------------------------------------------------


def key_line(host: Host, key: asyncssh.SSHKey) -> str:
    algorithm, blob = key.export_public_key("openssh").decode("ascii").split()[:2]
    return f"{host_token(host)} {algorithm} {blob}\n"


class UnsafeReplace(ValueError):
    """A changed key is pinned by a line that also covers other hosts."""


def _without(text: str, host: Host, old: Sequence[asyncssh.SSHKey]) -> str:
    """``text`` without the lines that pin ``old`` for ``host``; a line that is a pattern or
    a list of hosts cannot be removed for one host alone, so that is refused."""
    kept: list[str] = []
    for line in text.splitlines(keepends=True):
        pins = pinned_keys(host, line) if line.strip() and not line.startswith("#") else ()
        if not any(_same(k, o) for k in pins for o in old):
            kept.append(line)
            continue
        names = line.split()[0]
        marker = line.startswith("@")
        if marker or (not names.startswith("|") and names != host_token(host)):
            raise UnsafeReplace(
                f"the old key of {host.name} is pinned by a line that names more than this "
                f"host ({names}); edit it by hand"
            )
    return "".join(kept)


def write_keys(
    results: list[ScanResult], *, replace: bool
) -> tuple[list[ScanResult], dict[Path, int]]:
    """Pin the new keys (and, with ``replace``, the changed ones); the results as written and,
    per file, how many lines were written. One write per file, by rename."""
    by_file: dict[Path, list[int]] = {}
    for i, result in enumerate(results):
        if result.status == "new" or (replace and result.status == "changed"):
            by_file.setdefault(result.host.known_hosts, []).append(i)
    out = list(results)
    written: dict[Path, int] = {}
    for path, indexes in by_file.items():
        text = _read(path)
        count = 0
        seen: set[str] = set()
        for i in indexes:
            result = results[i]
            assert result.key is not None
            try:
                if result.status == "changed":
                    text = _without(text, result.host, result.pinned)
            except UnsafeReplace as exc:
                out[i] = ScanResult(result.host, result.key, result.pinned, str(exc))
                continue
            line = key_line(result.host, result.key)
            if line not in seen:  # two names for one address and port: one line
                if text and not text.endswith("\n"):
                    text += "\n"
                text += line
                seen.add(line)
                count += 1
            out[i] = ScanResult(result.host, result.key, result.pinned, written=True)
        if count:
            _atomic_write(path, text)
            written[path] = count
    return out, written


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- the report ----------------------------------------------------------------------------

_NEXT = {
    "new": "verify the fingerprint on the host, then run again with --accept",
    "changed": "host key CHANGED: verify out of band; --accept --replace pins the new key",
    "pinned": "",
    "added": "pinned",
    "replaced": "new key pinned",
}


def render(report: ScanReport) -> str:
    rows: list[list[str]] = []
    for r in report.results:
        key_type = r.key.get_algorithm() if r.key is not None else ""
        note = r.error or _NEXT[r.status]
        rows.append([r.host.name, host_token(r.host), key_type, r.fingerprint, r.status, note])
        if r.status in ("changed", "replaced"):
            for old in r.pinned:
                what = "was" if r.status == "replaced" else "pinned"
                rows.append(["", "", old.get_algorithm(), old.get_fingerprint(), what, ""])
    lines = [table(rows, ["host", "address", "key", "fingerprint", "status", "next step"])]
    total = len(report.results)
    summary = (
        f"{total} host(s): {report.count('pinned')} already pinned, "
        f"{report.count('new', 'added')} new, {report.count('changed', 'replaced')} changed, "
        f"{report.count('error')} failed"
    )
    lines.append("")
    lines.append(summary)
    for path, count in report.files.items():
        lines.append(f"wrote {count} key(s) to {path}")
    if report.count("new"):
        lines.append("nothing written for new keys: compare the fingerprints, then add --accept")
    if report.count("changed"):
        lines.append(
            "changed keys were NOT replaced: a changed key may be an attack; after checking "
            "it on the host, run again with --accept --replace"
        )
    return "\n".join(lines)


async def scan_and_pin(
    hosts: Sequence[Host],
    *,
    accept: bool,
    replace: bool,
    progress: Callable[[int, int], None] | None = None,
) -> ScanReport:
    results = await scan(hosts, progress=progress)
    report = ScanReport(results)
    if accept:
        report.results, report.files = write_keys(results, replace=replace)
    return report


def exit_status(report: ScanReport) -> int:
    """0 when every host's key is pinned now; 1 otherwise (new, changed, or unreachable)."""
    return 1 if report.count("new", "changed", "error") else 0
