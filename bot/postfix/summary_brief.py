"""The fleet view's per-host summary: exact totals without the top lists."""

from __future__ import annotations

from bisect import bisect_right
from operator import attrgetter
from typing import cast

from bot.postfix.models import QueueMessage
from bot.postfix.postfix import JsonRecipient, JsonRecord, record_of
from bot.postfix.qshape import BUCKETS
from bot.postfix.reasons import KNOWN_CLASSES, ReasonClass
from bot.postfix.summary import AGE_EDGES_SECONDS, SummaryBuilder

PENDING_TEXT = 64 * 1024  # characters of new reasons that make a fold due
# The age edges as floats: the same columns for a float ``now`` (each edge is exact as a
# float and Python compares ints with floats exactly), without slow int-float comparisons.
_FLOAT_EDGES = tuple(map(float, AGE_EDGES_SECONDS))
_BOUNCE_SENDERS = frozenset(("", "MAILER-DAEMON"))
_REASON = attrgetter("delay_reason")


class BriefSummaryBuilder(SummaryBuilder):
    """A ``SummaryBuilder`` for a fleet row: counts only, no top lists.

    Queues, ages, the oldest messages, the deferred classes (messages and recipients) and
    the qshape ``TOTAL`` row are exact; every top list (reasons, domains, senders) and every
    qshape domain row is left empty. So it needs no address, and it counts per deferred
    *message*, not per recipient. A message whose reasons all have a class in
    ``reasons.KNOWN_CLASSES`` (analysed lately) is counted in its classes at once; any other
    is kept as one raw key for the next fold, which analyses its reasons:
    ``(delay reason, column, recipients)`` for a message whose recipients share one reason
    (the usual case), ``(every recipient's reason, column)`` for one whose reasons differ.
    It is cheaper than the full builder and holds far less.
    """

    def __init__(self, now: float, max_keys: int = 1_000) -> None:
        super().__init__(now, top_n=0, max_keys=max_keys, shape_rows=0)
        # (reason, column, recipients) -> deferred messages whose recipients share it
        self._message_keys: dict[tuple[str, int, int], int] = {}
        # (every recipient's reason, column) -> deferred messages with mixed reasons
        self._mixed_keys: dict[tuple[tuple[str, ...], int], int] = {}
        self._pending_text = 0  # characters of the reasons in new raw keys since the fold
        # Counted at once: class -> [messages, recipients]; recipients per qshape column.
        self._counted: dict[ReasonClass, list[int]] = {}
        self._columns = [0] * (BUCKETS + 1)

    def add(self, message: QueueMessage) -> None:
        self.add_records([record_of(message)])

    def add_fields(
        self,
        queue_name: str,
        queue_id: str,
        arrival: int,
        size: int,
        sender: str,
        recipients: list[dict[str, str]],
        forced_expire: bool = False,
    ) -> None:
        recipient_records = [
            JsonRecipient(item["address"], item.get("delay_reason", "")) for item in recipients
        ]
        record = JsonRecord(
            queue_name,  # type: ignore[arg-type]  # a queue name, as the parsers give it
            queue_id,
            arrival,
            size,
            sender,
            recipient_records,
            forced_expire,
        )
        self.add_records([record])

    def add_records(self, records: list[JsonRecord]) -> None:
        """Count these messages (``PostqueueJsonParser.feed_records``'s records)."""
        # The hot path of `summary all`: what every message adds, in one loop.
        queues, ages, now = self._queues, self._ages, self.now
        edges = _FLOAT_EDGES if type(now) is float else AGE_EDGES_SECONDS
        known_classes, counted = KNOWN_CLASSES, self._counted
        columns, keys = self._columns, self._message_keys
        deferred = queues["deferred"]
        oldest = self._oldest_arrival
        oldest_bounce, oldest_regular = self._oldest_bounce, self._oldest_regular
        for record in records:
            queue_name = record.queue_name
            arrival = record.arrival_time
            column = bisect_right(edges, now - arrival)
            ages[column] += 1
            if arrival <= oldest:
                self._note_oldest(arrival, record.queue_id, record.sender, queue_name)
                oldest = self._oldest_arrival
            recipients = record.recipients
            n = len(recipients)
            if queue_name != "deferred":
                counts = queues.get(queue_name)
                if counts is None:
                    counts = queues[queue_name] = [0, 0, 0]
                counts[0] += 1
                counts[1] += n
                counts[2] += record.message_size
                continue
            deferred[0] += 1
            deferred[1] += n
            deferred[2] += record.message_size
            if record.sender in _BOUNCE_SENDERS:
                if arrival < oldest_bounce:
                    oldest_bounce = arrival
            elif arrival < oldest_regular:
                oldest_regular = arrival
            if not n:
                continue
            reason = recipients[0].delay_reason
            known = known_classes.get(reason)
            if n > 1:
                reasons = list(map(_REASON, recipients))
                if reasons.count(reason) != n and (
                    known is None or list(map(known_classes.get, reasons)).count(known) != n
                ):
                    # reasons that differ, and not all in one known class
                    self._add_mixed(reasons, column)
                    counted, columns, keys = self._counted, self._columns, self._message_keys
                    continue
            if known is not None:
                row = counted.get(known)
                if row is None:
                    row = counted[known] = [0, 0]
                row[0] += 1
                row[1] += n
                columns[column] += n
                continue
            key = (reason, column, n)
            seen = keys.get(key)
            if seen is None:
                keys[key] = 1
                self._pending_text += len(reason)
                if len(keys) + len(self._mixed_keys) >= self._raw_keys:
                    self._fold()
                    counted, columns, keys = self._counted, self._columns, self._message_keys
            else:
                keys[key] = seen + 1
        self._oldest_bounce, self._oldest_regular = oldest_bounce, oldest_regular

    def _add_mixed(self, recipient_reasons: list[str], column: int) -> None:
        """A message whose recipients' reasons differ: it counts once in each of their
        classes, its recipients one by one."""
        reasons = tuple(recipient_reasons)
        known = [KNOWN_CLASSES.get(reason) for reason in reasons]
        if None not in known:
            counted = self._counted
            classes = cast(list[ReasonClass], known)
            for reason_class in classes:
                row = counted.get(reason_class)
                if row is None:
                    row = counted[reason_class] = [0, 0]
                row[1] += 1
            for reason_class in set(classes):
                counted[reason_class][0] += 1
            self._columns[column] += len(reasons)
            return
        keys = self._mixed_keys
        key = (reasons, column)
        seen = keys.get(key)
        if seen is None:
            keys[key] = 1
            self._pending_text += sum(map(len, reasons))
            if len(keys) + len(self._message_keys) >= self._raw_keys:
                self._fold()
        else:
            keys[key] = seen + 1

    def fold_due(self) -> bool:
        # With few raw keys one slice of a listing can fill them: also fold once their
        # reasons add up to much text, so the fold add_fields makes when full stays cheap.
        half = self._raw_keys // 2
        keys = len(self._message_keys) + len(self._mixed_keys)
        return keys > half or self._pending_text > PENDING_TEXT

    def pending_reasons(self) -> list[str]:
        reasons = dict.fromkeys(self._message_reasons)
        reasons.update(dict.fromkeys(reason for reason, _column, _n in self._message_keys))
        for mixed, _column in self._mixed_keys:
            reasons.update(dict.fromkeys(mixed))
        return list(reasons)

    def _fold(self) -> None:
        total = self._shape.add_total
        for reason_class, (messages, recipients) in self._counted.items():
            group = self._class(reason_class)
            group.messages += messages
            group.recipients += recipients
        for column, n in enumerate(self._columns):
            if n:
                total(column, n)
        for reason, messages in self._message_reasons.items():
            self._class(self._analyse(reason)[0]).messages += messages
        for (reason, column, n), messages in self._message_keys.items():
            group = self._class(self._analyse(reason)[0])
            group.messages += messages
            group.recipients += messages * n
            total(column, messages * n)
        for (reasons, column), messages in self._mixed_keys.items():
            classes = [self._analyse(reason)[0] for reason in reasons]
            for reason_class in set(classes):
                self._class(reason_class).messages += messages
            for reason_class in classes:
                self._class(reason_class).recipients += messages
            total(column, messages * len(reasons))
        self._counted, self._columns = {}, [0] * (BUCKETS + 1)
        self._message_reasons, self._pending_text = {}, 0
        self._message_keys, self._mixed_keys = {}, {}
