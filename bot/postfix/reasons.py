"""Group Postfix delay reasons: a normalised text for grouping and a coarse class.

``normalise`` keeps what identifies a problem (the remote host name, port, SMTP reply code,
enhanced status code and wording) and folds what varies per message or per connection:
addresses become ``<addr>``, IP addresses ``<ip>``, session tokens (a run of ten or more
letters and digits mixing both) and numbers of six or more digits ``<id>``, dates and clock
times ``<time>``; short numbers ("try again in 300 seconds") stay. Whitespace is collapsed
and the result cut to 200 characters. The ``delivery temporarily suspended: `` prefix (the
destination was marked dead and the rest deferred untried) is dropped, so those recipients
group with the ones that were actually tried.

``classify`` tests ordered patterns against the whole (uncut) normalised text with host
names folded as well (a host called ``spam-filter.example`` must not look like a
blocklist). The first match wins; the order puts the most specific wording first:

greylisted, mailbox_full, local_config, network_unreachable, tls_failure, auth_failure,
blocklisted (reverse DNS, SPF/DKIM/DMARC, reputation), rate_limited, blocklisted (other
policy refusals), dns_tempfail, host_not_found, connection_refused, connection_timeout,
else other.

Each class names the diagnose checks that confirm it (``ReasonClass.checks``), and
``confirming_check`` says which one confirms a given reason: ``ptr`` (reverse DNS,
forward-confirmed), ``dnsbl`` (reputation and blocklists) or ``sender_auth`` (SPF, DKIM,
DMARC) for the refusals in ``blocklisted``.

Decisions where the wording is ambiguous (tests/data/reasons-corpus.jsonl holds real
reasons from public sources, each with the class it must get; docs/ops/reasons.md has the
measured shares):

- ``local_config`` is Postfix's own wording for a fault on this host: ``mail transport
  unavailable`` and ``unknown mail transport error`` (a master.cf service that is missing
  or fails to start), a local socket that is not there (``connect to
  mail.example[/var/run/dovecot/lmtp]: No such file or directory``), ``mail for ... loops
  back to myself``, a delivery command that died, a failed table or address lookup.
- ``Network is unreachable``, ``No route to host`` and ``Host is unreachable`` are
  ``network_unreachable``: the path from this host (very often IPv6 without an IPv6 route).
- A 421 greeting (``refused to talk to me: 421 ...``) is ``rate_limited`` only when it
  says so (too many connections, rate, volume, throttling); a bare 421 is ``other``.
- Refusals that give the sender's reputation as the reason are ``blocklisted`` even where
  they say "rate limited" or "deferred": Gmail's "unusual rate of unsolicited mail",
  Yahoo's ``[TSS04]`` ("unexpected volume or user complaints"), T-Online's ``(BL)`` and
  ``(DIAL)``, NetEase's ``DT:SPM``, Microsoft's ``S3140``/``S3150``. So are missing or
  unconfirmed reverse DNS (``cannot find your hostname``, ``PTR``, ``rDNS``, Gmail's
  4.7.23/4.7.25) and SPF/DKIM/DMARC refusals (4.7.24-4.7.27, 4.7.30-4.7.32,
  "unauthenticated"). Gmail's 4.7.28 without a reason beyond the rate is ``rate_limited``.
- ``Host not found, try again``, ``Temporary failure in name resolution`` and ``Malformed
  or unexpected name server reply`` are ``dns_tempfail`` (SERVFAIL, timeouts, broken
  replies); ``Host not found`` without "try again" and "no data record" are
  ``host_not_found``.
- ``conversation with ... timed out while ...`` counts as ``connection_timeout``.
- Relay refusals (``Relay access denied``) count as ``auth_failure``: the usual cause is a
  missing or wrong SASL login to the relay.
- ``lost connection with ...`` has no class of its own (``other``).

Reasons come from remote servers, so the work is bounded: only the first 4,096 characters
of a reason (``MAX_EXAMINED``; Postfix reads replies in lines of at most 2,048) and the first
256 of each word (``MAX_WORD``: more than any host name or address) are looked at, and
every pattern runs in time linear in its input. Within those limits the results are the
ones the former (quadratic) patterns gave.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache


class ReasonClass(StrEnum):
    connection_timeout = "connection_timeout"
    connection_refused = "connection_refused"
    host_not_found = "host_not_found"
    dns_tempfail = "dns_tempfail"
    tls_failure = "tls_failure"
    auth_failure = "auth_failure"
    greylisted = "greylisted"
    rate_limited = "rate_limited"
    blocklisted = "blocklisted"
    mailbox_full = "mailbox_full"
    local_config = "local_config"
    network_unreachable = "network_unreachable"
    other = "other"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def checks(self) -> tuple[str, ...]:
        """The diagnose checks (``bot/diag``, by kind) whose results confirm this cause or
        rule it out, most telling first; ``confirming_check`` narrows it for one reason."""
        return _CHECKS.get(self, ())


# Deferred mail of these classes is delivered on its own once the remote site lets it in,
# so nothing offers to purge it (the alert's Purge… button): greylisting is retried and
# accepted after the site's wait (diagnose's ``greylisting`` verdict: "Do not purge it: it
# will be delivered"), and a rate limit only slows delivery down (the site accepts mail,
# fewer at a time). ``mailbox_full`` is not here: it clears only if the mailbox's owner
# acts, an abandoned mailbox never does, and diagnose has no verdict that says to wait
# for it. The other classes need a fix somewhere (DNS, TLS, credentials, a listing, a
# dead site) before the mail can go.
DELIVERS_ON_ITS_OWN: frozenset[ReasonClass] = frozenset(
    {ReasonClass.greylisted, ReasonClass.rate_limited}
)

_LABELS: dict[ReasonClass, str] = {
    ReasonClass.connection_timeout: "Connection timed out",
    ReasonClass.connection_refused: "Connection refused",
    ReasonClass.host_not_found: "Host or domain not found",
    ReasonClass.dns_tempfail: "DNS temporary failure",
    ReasonClass.tls_failure: "TLS failure",
    ReasonClass.auth_failure: "Relay / SASL authentication failure",
    ReasonClass.greylisted: "Greylisted",
    ReasonClass.rate_limited: "Rate limited / too many connections",
    ReasonClass.blocklisted: "Blocklisted / policy reject",
    ReasonClass.mailbox_full: "Mailbox full / over quota",
    ReasonClass.local_config: "Local configuration / transport fault",
    ReasonClass.network_unreachable: "Network unreachable / no route",
    ReasonClass.other: "Other",
}

_CHECKS: dict[ReasonClass, tuple[str, ...]] = {
    ReasonClass.connection_timeout: ("probe",),
    ReasonClass.connection_refused: ("probe",),
    ReasonClass.network_unreachable: ("probe", "sending_ips"),
    ReasonClass.host_not_found: ("mx", "queue_dns"),
    ReasonClass.dns_tempfail: ("queue_dns", "host_mx", "resolv"),
    ReasonClass.tls_failure: ("probe",),
    ReasonClass.auth_failure: ("relay",),
    ReasonClass.blocklisted: ("ptr", "dnsbl", "sender_auth"),
    ReasonClass.local_config: ("postconf_services", "postconf"),
}

MAX_REASON_LENGTH = 200
MAX_EXAMINED = 4096  # characters of a reason that are looked at (module doc)
MAX_WORD = 256  # characters of one word that are looked at (module doc)
CACHED_LENGTH = 512  # longer reasons have a small cache of their own
_SUSPENDED = "delivery temporarily suspended: "
_PREFIXES = re.compile(rf"\s*(?:{_SUSPENDED}\s*(?=\S))*")

# Folding works word by word (whitespace-separated): only words holding a digit or an
# '@' can change, and short strings keep the regular expressions cheap.
_FOLDABLE = re.compile(r"[\d@]")
# Every pattern below runs in time linear in the length of what it is given: a match is
# tried at most once per run of characters (no restarts inside a run that already failed),
# so a hostile 2 KB word costs microseconds, not milliseconds. tests/postfix/test_reasons_linear.py
# checks this, and that the results are the ones the former, quadratic patterns gave.
#
# An address, or (group ``skip``) the rest of a run of local-part characters in which no
# address can start: if one fails at the run's first character, it fails at all of them.
_LOCAL = r"[^\s<>()\[\]{};:,\"'`@]"
_ADDRESS = re.compile(
    rf"<[^<>\s@]*@[^<>\s]*>|{_LOCAL}+@[A-Za-z0-9._-]+[A-Za-z0-9]|(?P<skip>{_LOCAL}+)"
)
_TIME = re.compile(
    r"\d{4}-\d\d-\d\d(?:T\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?"
    r"|\d\d:\d\d:\d\d(?:\.\d+)?"
)
_IPV6 = re.compile(
    r"(?<![\w:])(?:IPv6:)?(?:[0-9A-Fa-f]{0,4}:){2,7}(?::|[0-9A-Fa-f]{1,4}|\d+\.\d+\.\d+\.\d+)(?![\w:])"
)
_IPV4 = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.])")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# A run of ten or more letters and digits mixing both, or six or more digits.
_ID_RUN = re.compile(
    r"(?<![A-Za-z0-9])(?:(?=[A-Za-z0-9]*[A-Za-z])(?=[A-Za-z0-9]*\d)[A-Za-z0-9]{10,}|\d{6,})"
    r"(?![A-Za-z0-9])"
)
# Only for classifying: host names must not decide the class ("spam-filter.example").
# ``name[address]`` is tried only where a run of host characters starts, and a dotted name
# only where a chain of labels starts (not after a label character or "label."): a name
# that fails at the start of its chain fails at every later position in it. A run that
# starts with dots or dashes (group ``odd``) is rare and is taken apart by ``_odd_run``.
_NAME = r"(?:[A-Za-z0-9-]+\.)+[A-Za-z][A-Za-z0-9-]*[A-Za-z]"
_CHAIN_START = r"(?<![A-Za-z0-9-])(?<![A-Za-z0-9-]\.)"
_BRACKETED = r"[A-Za-z0-9][A-Za-z0-9.-]*\[[^\]\s]*\]"
_HOST = re.compile(
    rf"(?<![A-Za-z0-9.-])(?:{_BRACKETED}|(?P<odd>[.-]+{_BRACKETED}))|{_CHAIN_START}{_NAME}"
)
_HOST_NAME = re.compile(_CHAIN_START + _NAME)
_NAME_HERE = re.compile(_NAME)
_ODD_NEXT = re.compile(rf"[A-Za-z0-9]|{_CHAIN_START}-")


def _then(first: str, then: str) -> str:
    """``first.*then`` tried only where a line starts, up to its first ``first``: tried from
    every ``first``, it would scan to the end of the line from each of them."""
    return rf"(?m:^)(?:(?!{first}).)*{first}.*{then}"


# (class, confirming check, keywords, pattern): the pattern decides; the lower-case keywords
# are a cheap pre-filter, and every match of the pattern contains at least one of them. The
# confirming check is the diagnose check (``bot/diag``: ``ptr``, ``dnsbl``, ``sender_auth``)
# whose result confirms or rules out this cause; ``None`` where no one check does.
_Rule = tuple[ReasonClass, str | None, tuple[str, ...], re.Pattern[str]]
_RULES: tuple[_Rule, ...] = tuple(
    (cls, check, keywords, re.compile(pattern, re.IGNORECASE))
    for cls, check, keywords, pattern in (
        # rspamd's greylisting says only "451 4.7.1 Try again later" (its default message).
        (
            ReasonClass.greylisted,
            None,
            ("grey", "gray", "4.7.1 try again later"),
            r"gr[ea]y[ -]?list|\b4\.7\.1 Try again later\b",
        ),
        (
            ReasonClass.mailbox_full,
            None,
            ("mailbox", "quota", "exceeded", ".2.2", "storage space"),
            r"mailbox (?:is )?full|over ?quota|quota (?:exceeded|full)|exceeded (?:its|the) "
            r"(?:storage|quota)|\b[45]\.2\.2\b|out of storage space",
        ),
        # Postfix's own words for a fault on this host: a transport that master.cf lacks or
        # that cannot start, a local socket (LMTP, a content filter) that is not there, a
        # delivery command that fails, mail to this host that it does not accept as local.
        (
            ReasonClass.local_config,
            None,
            (
                "transport",
                "no such file",
                "permission denied",
                "loops back",
                "configuration error",
                "command died",
                "resolver failure",
                "lookup failure",
                "output file",
                "local configuration",
                "cannot update mailbox",
            ),
            r"mail transport unavailable|unknown mail transport error|"
            r"no such file or directory|connect to \S+: permission denied|"
            r"loops back to myself|mail system configuration error|"
            r"command died with (?:status|signal)|address resolver failure|"
            r"(?:table|map) lookup failure|can't create user output file|"
            r"local configuration error|cannot update mailbox",
        ),
        (
            ReasonClass.network_unreachable,
            None,
            ("unreachable", "no route", "cannot assign requested address"),
            r"network is unreachable|no route to host|host is unreachable|"
            r"cannot assign requested address",
        ),
        (
            ReasonClass.tls_failure,
            None,
            ("tls", "certificate", "handshake", "ssl"),
            r"\bTLS\b|STARTTLS|certificate|(?<!HELO )(?<!EHLO )handshake|\bSSL\b",
        ),
        (
            ReasonClass.auth_failure,
            None,
            (
                "sasl",
                "authentication",
                "relay",
                "must",
                "password",
                ".7.8",
                "unauthenticated senders",
            ),
            r"SASL|authentication (?:failed|required|credentials)|relay(?:ing)? (?:access )?"
            r"denied|relay not permitted|must (?:authenticate|log ?in)|password not accepted|"
            r"\b[45]\.7\.8\b|not (?:configured|permitted|allowed) to relay|unable to relay|"
            r"SMTP authentication|unauthenticated senders not allowed",
        ),
        # Refusals for the sending address's reverse DNS (and the HELO name that should match
        # it): the ``ptr`` check confirms them.
        (
            ReasonClass.blocklisted,
            "ptr",
            (
                "hostname",
                "ptr",
                "rdns",
                "reverse",
                "4.7.25",
                "5.7.25",
                "resolve",
                "name lookup failed",
                "aup#",
                "helo command rejected",
            ),
            r"cannot find your (?:reverse )?hostname|\bPTR\b|\b(?:FC)?rDNS\b|"
            r"reverse (?:DNS|host ?name|lookup|name|record|address|mapping)|"
            r"\b[45]\.7\.25\b|does not resolve to (?:your|the|an) (?:IP|address)|"
            r"(?:did|does|could) not resolve your (?:IP|address|host)|IP name lookup failed|"
            r"\bAUP#(?:CXDNS|[IO]-?11[05]0)\b|"
            r"Helo command rejected: (?:Host not found|need fully-qualified hostname)",
        ),
        # Refusals for SPF/DKIM/DMARC: ``sender_auth``.
        (
            ReasonClass.blocklisted,
            "sender_auth",
            (
                "spf",
                "dkim",
                "dmarc",
                "unauthenticated",
                "authentication level",
                "aup#cxsndr",
                "4.7.2",
                "4.7.3",
                "5.7.2",
                "5.7.3",
            ),
            r"\bSPF\b|DKIM|DMARC|unauthenticated|required authentication level|\bAUP#CXSNDR\b|"
            r"\b[45]\.7\.(?:2[4-7]|3[0-2])\b",
        ),
        # Rate limits in words that also say "blocked" (QQ, Cox's AUP#CXCNCT/CXMXRT).
        (
            ReasonClass.rate_limited,
            None,
            ("frequency limited", "aup#cx"),
            r"frequency limited|\bAUP#(?:CXCNCT|CXMXRT)\b",
        ),
        # Refusals for the sending address's reputation (provider blocklists, complaint
        # rates, public DNSBLs): ``dnsbl`` confirms the public ones.
        (
            ReasonClass.blocklisted,
            "dnsbl",
            (
                "block",
                "black",
                "listed",
                "rbl",
                "dnsbl",
                "barracuda",
                "sorbs",
                "spamhaus",
                "spamcop",
                "reputation",
                "spam",
                "unsolicited",
                "complaints",
                "[ts",
                "[ipts",
                "dt:spm",
                "(bl)",
                "(dial)",
                "dynamic",
                "dialup",
                "dial-up",
                "s3140",
                "s3150",
                "ofr",
                "lpn",
                "aup#",
                "network not allowed",
                "4.7.5",
                "4.7.6",
                "5.7.5",
                "5.7.6",
                "5.7.7",
            ),
            r"(?<!account is )block(?:ed|list|ing)|black ?list|\blisted (?:at|on|in|by)\b|"
            r"\bRBL\b|DNSBL|spamhaus|spamcop|barracuda|\bSORBS\b|reputation|spam|unsolicited|complaints|"
            r"\[(?:IP)?TS[S0-9]\d*\]|DT:SPM|\((?:BL|DIAL)\)|"
            r"\b(?:dynamic|dial-?up)\b[^.;]{0,40}\b(?:IP|address|range|pool)|"
            r"\bS31[45]0\b|\b(?:OFR|LPN)[A-Z0-9]*_(?:10[123]|510|999)\b|\bAUP#(?:[A-Z]*BL|IPBL\d+|[IO]-?1(?:0[0-8]\d|2[0-5]\d))\b|"
            r"host network not allowed|\b4\.7\.[56]\d\d\b|\b5\.7\.[5-7]\d\d\b",
        ),
        (
            ReasonClass.rate_limited,
            None,
            (
                "too many",
                "rate",
                "throttl",
                "volume",
                "try again later",
                "4.7.28",
                "too fast",
                "too quickly",
                "exceeded",
                "concurrent",
            ),
            r"too many (?:connections|concurrent|messages|recipients|sessions)|\brate\b|"
            r"rate.?limit|throttl|unexpected volume|try again later, closing connection|"
            r"\b4\.7\.28\b|too fast|too quickly|concurrent connections|"
            r"(?:relay|sending|connection|message|session) (?:limit|threshold) exceeded",
        ),
        (
            ReasonClass.blocklisted,
            None,
            ("polic", "rejected", "denied", "5.7.1", "not in"),
            r"polic(?:y|ies)|client host rejected|sender address rejected|"
            r"(?<!recipient address rejected: )access denied|\b5\.7\.1\b|"
            r"not in (?:the )?(?:white|allow) ?list|(?:content|connection) (?:denied|rejected)",
        ),
        (
            ReasonClass.host_not_found,
            None,
            ("null", "no relevant answers"),
            r"\bnull ?MX\b|no relevant answers",
        ),
        (
            ReasonClass.dns_tempfail,
            None,
            ("try again", "name resolution", "dns", "servfail", "name server reply"),
            r"not found, try again|temporary failure in name resolution|"
            rf"{_then('name service error', 'try again')}|"
            r"dns (?:lookup |query )?(?:error|fail(?:ure|ed)|timeout)|SERVFAIL|"
            r"malformed or unexpected name server reply",
        ),
        (
            ReasonClass.host_not_found,
            None,
            ("not found", "not known", "no data record", "nxdomain", "no mx host", "nodename"),
            r"host or domain name not found|host not found|name or service not known|"
            r"no data record|NXDOMAIN|no MX host|nodename nor servname",
        ),
        (ReasonClass.connection_refused, None, ("connection refused",), r"connection refused"),
        (
            ReasonClass.connection_timeout,
            None,
            ("timed out",),
            r"connection timed out|operation timed out|timed out while|timed out\]|"
            rf"{_then('conversation with ', ' timed out')}",
        ),
    )
)


def _fold_token(match: re.Match[str]) -> str:
    token = match.group(0)
    return "<id>" if _ID_RUN.search(token) else token


def _address(match: re.Match[str]) -> str:
    return match.group(0) if match.group("skip") is not None else "<addr>"


def _fold_word(word: str) -> str:
    if word.isalpha() or _FOLDABLE.search(word) is None:
        return word
    if "@" in word:
        word = _ADDRESS.sub(_address, word)
    word = _TIME.sub("<time>", word)
    if word.count(":") >= 2:
        word = _IPV6.sub("<ip>", word)
    if "." in word:
        word = _IPV4.sub("<ip>", word)
    return _TOKEN.sub(_fold_token, word)


def _strip_prefix(text: str) -> str:
    """``text`` without leading white space and ``delivery temporarily suspended:`` prefixes
    (found in one pass: cutting them off one by one would copy the text each time)."""
    match = _PREFIXES.match(text)
    return text[match.end() :].strip() if match else text.strip()


def _truncate(text: str) -> str:
    if len(text) <= MAX_REASON_LENGTH:
        return text
    return text[: MAX_REASON_LENGTH - 1] + "…"


def _host(match: re.Match[str]) -> str:
    return "<host>" if match.group("odd") is None else _odd_run(match.group(0))


def _odd_run(text: str) -> str:
    """A run like ``-.a.b[c]``, scanned as one search over the whole word would: a name may
    start at a chain's first dash; else ``name[address]`` starts at the first letter/digit."""
    end, pos, out = text.index("["), 0, []
    while (found := _ODD_NEXT.search(text, pos, end)) is not None:
        out.append(text[pos : found.start()])
        if found.group() != "-":
            return "".join(out) + "<host>"
        name = _NAME_HERE.match(text, found.start(), end)
        out.append("-" if name is None else "<host>")
        pos = found.end() if name is None else name.end()
    return "".join(out) + text[pos:end] + _HOST.sub(_host, text[end:])


def _host_word(word: str) -> str:
    """Host names in ``word`` replaced by ``<host>``.

    ``name[address]`` needs a ``]`` after its ``[``; the part of the word after the last
    ``]`` is searched for dotted names only, so no ``[`` is followed to the end of the word
    again and again.
    """
    if "." not in word and "[" not in word:
        return word
    close = word.rfind("]") + 1
    if close == 0:
        return _HOST_NAME.sub("<host>", word)
    return _HOST.sub(_host, word[:close]) + _HOST_NAME.sub("<host>", word[close:])


def _match_words(words: list[str]) -> tuple[ReasonClass, str | None]:
    text = " ".join(_host_word(word) for word in words)
    lowered = text.lower()
    for cls, check, keywords, pattern in _RULES:
        if any(keyword in lowered for keyword in keywords) and pattern.search(text):
            return cls, check
    return ReasonClass.other, None


def _classify_words(words: list[str]) -> ReasonClass:
    return _match_words(words)[0]


def _words(key: str) -> list[str]:
    return [_fold_word(word[:MAX_WORD]) for word in _strip_prefix(key).split()]


def _analyse_text(key: str) -> tuple[ReasonClass, str]:
    words = _words(key)
    return _classify_words(words), _truncate(" ".join(words))


_analyse_key = lru_cache(maxsize=4096)(_analyse_text)


def _address_key(reason: str) -> str:
    """The reason with addresses folded (cheap): the key of the second cache."""
    if "@" not in reason:
        return reason
    return " ".join(_ADDRESS.sub(_address, w[:MAX_WORD]) if "@" in w else w for w in reason.split())


@lru_cache(maxsize=16384)
def _analyse_short(reason: str) -> tuple[ReasonClass, str]:
    return _analyse_key(_address_key(reason))


@lru_cache(maxsize=256)
def _analyse_long(reason: str) -> tuple[ReasonClass, str]:
    return _analyse_text(_address_key(reason))


CLASS_MEMO = 16_384  # raw reasons (up to CACHED_LENGTH characters) in KNOWN_CLASSES
# Raw reason -> class, for every reason of up to CACHED_LENGTH characters that ``analyse``
# has seen lately (emptied when it holds CLASS_MEMO, so it stays small): a plain dict
# lookup that does no work for a reason not in it. A summary's hot path counts a known
# reason at once and leaves the others for a fold, which it does in slices.
KNOWN_CLASSES: dict[str, ReasonClass] = {}


def analyse(reason: str) -> tuple[ReasonClass, str]:
    """``(classify(reason), normalise(reason))``, cached per distinct raw reason.

    Raw reasons often differ only in the recipient address; folding addresses first lets
    the second, more expensive cache serve all of them. Only the first ``MAX_EXAMINED``
    characters are looked at, and only the first ``MAX_WORD`` of each word. Reasons longer
    than ``CACHED_LENGTH`` (rare; hostile ones are all different) have a small cache of
    their own, so the caches hold a few MiB at most. The class of a short reason is also
    put in ``KNOWN_CLASSES``.
    """
    if len(reason) <= CACHED_LENGTH:
        found = _analyse_short(reason)
        if len(KNOWN_CLASSES) >= CLASS_MEMO:
            KNOWN_CLASSES.clear()
        KNOWN_CLASSES[reason] = found[0]
        return found
    return _analyse_long(reason[:MAX_EXAMINED])


def normalise(reason: str) -> str:
    """The grouping key of a delay reason (see the module docstring)."""
    return analyse(reason)[1]


def classify(reason: str) -> ReasonClass:
    """The coarse class of a delay reason; an empty reason is ``other``."""
    return analyse(reason)[0]


@lru_cache(maxsize=1024)
def confirming_check(reason: str) -> str | None:
    """The diagnose check that confirms this reason's cause (one of its class's ``checks``):
    ``ptr`` for a reverse-DNS refusal, ``dnsbl`` for a reputation or blocklist one,
    ``sender_auth`` for SPF/DKIM/DMARC; None where no single check does. Same limits and
    work as ``analyse`` (diagnose asks only about the reasons it samples)."""
    return _match_words(_words(_address_key(reason[:MAX_EXAMINED])))[1]
