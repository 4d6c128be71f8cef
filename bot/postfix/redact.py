"""What mailqbot may show of a Postfix setting: table specs without their secrets.

A Postfix lookup table is named ``type:name``. For a file-based type the name is a path
(``hash:/etc/postfix/sasl_passwd``), but for an in-line type it is the content itself:
``static:user:password``, ``inline:{ [relay.example]:587 = user:password }``,
``randmap:{a, b}``. In ``smtp_sasl_password_maps`` that content is the relay password. So
every value mailqbot reads with ``postconf`` (``-x`` for main.cf, ``-P`` for master.cf
``-o`` overrides) passes through ``redact_parameter`` where its output is parsed, and no
model, reply, file, audit row or log line downstream ever holds the secret.

The rule:

- A table spec shows its type and, for a file-based type (``FILE_TYPES``) with a plain
  absolute path, that path. Anything else after the type is replaced: ``static:(redacted)``,
  ``inline:(redacted)``, ``hash:(redacted)`` for a relative path. ``proxy:`` and ``debug:``
  keep the redacted spec they wrap (``proxy:hash:/etc/postfix/sasl_passwd``); ``pipemap:{..}``
  and ``unionmap:{..}`` keep each member, redacted the same way. A spec of a type this module
  does not know is ``(redacted)`` whole: it may be a password with its type left out.
- A parameter whose name (for an override ``service/type/name``, its last part) ends in
  ``_maps``, ``_map``, ``_table``, ``_tables`` or ``_checks``, or contains ``password``,
  ``passwd`` or ``secret``, holds a list of table specs (split at commas and white space
  outside braces, rejoined with ``, ``): each item is redacted as above, and an item that is
  neither a table spec of a known type nor a ``$name`` reference is ``(redacted)`` whole.
  This covers ``smtp_sasl_password_maps``, ``lmtp_sasl_password_maps`` and
  ``smtpd_sender_login_maps``, in main.cf and as ``-o`` overrides alike.
- Every other value, and free text such as postconf's warnings (``unused parameter:
  name=static:...``), keeps its words, but each embedded table spec (a known type and ``:``
  at the start of a word) is redacted: ``check_sender_access inline:(redacted)``. That is
  how an ``-o`` override that is not a table parameter is shown: ``yes`` and
  ``permit_sasl_authenticated`` stay readable, a table spec in it never does.

Pure functions; each scan is linear in the length of its input (nested braces are followed
to at most ``MAX_DEPTH`` levels; deeper ones are redacted whole).
"""

from __future__ import annotations

import re

PLACEHOLDER = "(redacted)"
MAX_DEPTH = 8
FILE_TYPES = frozenset({
    "btree", "cdb", "cidr", "dbm", "hash", "ldap", "lmdb", "memcache", "mongodb", "mysql",
    "pcre", "pgsql", "regexp", "sdbm", "sqlite", "texthash",
})  # fmt: skip
WRAPPERS = frozenset({"proxy", "debug"})  # proxy:hash:/path
COMPOSITE = frozenset({"pipemap", "unionmap"})  # pipemap:{spec, spec}
IN_LINE = frozenset({
    "environ", "fail", "inline", "internal", "netinfo", "nis", "nisplus", "randmap",
    "socketmap", "static", "tcp", "unix",
})  # fmt: skip
KNOWN_TYPES = FILE_TYPES | WRAPPERS | COMPOSITE | IN_LINE
TABLE_SUFFIXES = ("_maps", "_map", "_table", "_tables", "_checks")
SECRET_WORDS = ("password", "passwd", "secret")
_PATH = re.compile(r"(/[A-Za-z0-9._+-]+)+")
_REFERENCE = re.compile(r"\$(\{[A-Za-z0-9_]+\}|\([A-Za-z0-9_]+\)|[A-Za-z0-9_]+)")
# A known type and ":" at the start of a word: after white space, a comma, "{", "=", a
# quote or "(", or at the very start.
_SPEC_START = re.compile(
    r"(?<![^\s,{=\"'(])(" + "|".join(sorted(KNOWN_TYPES, key=len, reverse=True)) + r"):"
)
_WRAPPED = re.compile("(?:(?:" + "|".join(sorted(WRAPPERS)) + "):)*")
_SEPARATORS = " \t\r\n,"


def redact_parameter(name: str, value: str) -> str:
    """``value`` of the Postfix parameter ``name`` (or override ``service/type/name``), as
    mailqbot may show it (the rule is in the module docstring)."""
    if not is_table_parameter(name):
        return redact_text(value)
    shown = [
        item if _REFERENCE.fullmatch(item) else redact_table_spec(item)
        for item in split_list(value)
    ]
    return ", ".join(shown)


def is_table_parameter(name: str) -> bool:
    base = name.rsplit("/", 1)[-1].lower()
    return base.endswith(TABLE_SUFFIXES) or any(word in base for word in SECRET_WORDS)


def redact_table_spec(spec: str, depth: int = 0) -> str:
    """One ``type:name``: its type, and the path of a file-based map; no in-line content."""
    prefix = spec[: _wrappers(spec)]
    kind, colon, rest = spec[len(prefix) :].partition(":")
    if not colon or kind not in KNOWN_TYPES:
        return prefix + PLACEHOLDER
    if kind in FILE_TYPES and _PATH.fullmatch(rest):
        return f"{prefix}{kind}:{rest}"
    if kind in COMPOSITE and depth < MAX_DEPTH and _one_group(rest):
        members = (redact_table_spec(m, depth + 1) for m in split_list(rest[1:-1]))
        return f"{prefix}{kind}:{{{', '.join(members)}}}"
    return f"{prefix}{kind}:{PLACEHOLDER}"


def redact_text(text: str) -> str:
    """Free text (a value, a warning) with every embedded table spec redacted."""
    out: list[str] = []
    pos = 0
    while match := _SPEC_START.search(text, pos):
        end = _word_end(text, match.start())
        out += (text[pos : match.start()], redact_table_spec(text[match.start() : end]))
        pos = end
    out.append(text[pos:])
    return "".join(out)


def split_list(value: str) -> list[str]:
    """Postfix's list syntax: items separated by commas or white space outside ``{}``."""
    items: list[str] = []
    pos = 0
    while pos < len(value):
        if value[pos] in _SEPARATORS:
            pos += 1
            continue
        end = _word_end(value, pos)
        items.append(value[pos:end])
        pos = end
    return items


def unwrapped(spec: str) -> str:
    """The table behind ``proxy:`` or ``debug:``: ``hash:/path`` of ``proxy:hash:/path``."""
    return spec[_wrappers(spec) :]


def _wrappers(spec: str) -> int:
    """The length of the ``proxy:``/``debug:`` prefix of ``spec`` (0 if none)."""
    match = _WRAPPED.match(spec)
    return match.end() if match else 0


def _word_end(text: str, start: int) -> int:
    """Where the list item starting at ``start`` ends: the first comma or white space
    outside braces; the end of the text if a brace is never closed."""
    depth = 0
    for index in range(start, len(text)):
        char = text[index]
        if char == "{":
            depth += 1
        elif char == "}" and depth:
            depth -= 1
        elif depth == 0 and char in _SEPARATORS:
            return index
    return len(text)


def _one_group(text: str) -> bool:
    """``text`` is one ``{...}`` group: it opens with a brace that closes at its very end."""
    if not text.startswith("{"):
        return False
    depth = 0
    for index, char in enumerate(text):
        depth += (char == "{") - (char == "}")
        if depth == 0:
            return index == len(text) - 1
    return False
