"""What the bot knows about a Postfix queue: messages, recipients, queue names and IDs.

Everything here is pure data. Strings taken from a queue (sender, recipient, reason) are
hostile text: they are stored as Postfix printed them and escaped only when rendered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

QUEUE_NAMES: tuple[str, ...] = ("maildrop", "incoming", "active", "deferred", "hold", "corrupt")

# Postfix's "safe" alphabet (src/util/safe_ultostr.c): digits and consonants, no vowels.
# Long queue IDs (enable_long_queue_ids = yes) are: seconds (base 52, six or more chars),
# microseconds (base 52, exactly four chars), the separator 'z', then the inode number in
# base 51, i.e. the same alphabet without its last character 'z' (src/global/mail_queue.h).
_SAFE52 = "0-9BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"
_SAFE51 = "0-9BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxy"
# Short IDs: five upper-case hex digits of microseconds, then the inode number in hex.
# The upper bounds (21 and 29 characters for 64-bit inodes and times) are rounded up; they
# only keep absurd strings out.
QUEUE_ID_PATTERN = rf"[0-9A-F]{{6,24}}|[{_SAFE52}]{{10,16}}z[{_SAFE51}]{{1,14}}"
_QUEUE_ID = re.compile(QUEUE_ID_PATTERN)


def is_queue_id(text: str) -> bool:
    """True if ``text`` is a Postfix queue ID in the short or the long form."""
    return _QUEUE_ID.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class Recipient:
    """One recipient; ``delay_reason`` is empty when Postfix has not recorded one.

    From Postfix 3.11 on, ``postqueue -j`` also gives ``orig_address`` (the address before
    aliasing or rewriting; Postfix prints the address itself when there was none) and lists
    recipients that have already bounced but whose non-delivery notice is not written yet:
    those carry ``bounce_reason`` instead of ``delay_reason``.
    """

    address: str
    delay_reason: str
    orig_address: str = ""
    bounce_reason: str = ""


@dataclass(frozen=True, slots=True)
class QueueMessage:
    """One queue file as ``postqueue -j`` (or ``-p``) describes it.

    ``arrival_time`` is seconds since the epoch. ``sender`` is as Postfix prints it: the
    null sender appears as ``MAILER-DAEMON`` (Postfix's ``empty_address_recipient``).
    """

    queue_name: str
    queue_id: str
    arrival_time: int
    message_size: int
    sender: str
    recipients: tuple[Recipient, ...]
    forced_expire: bool = False
