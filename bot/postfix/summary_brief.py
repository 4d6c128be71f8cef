"""The fleet view's per-host summary: exact totals without the top lists."""

from __future__ import annotations

from bisect import bisect_right

from bot.postfix.summary import AGE_EDGES_SECONDS, SummaryBuilder

PENDING_TEXT = 64 * 1024  # characters of new reasons that make a fold due


class BriefSummaryBuilder(SummaryBuilder):
    """A ``SummaryBuilder`` for a fleet row: counts only, no top lists.

    Queues, ages, the oldest messages, the deferred classes (messages and recipients) and
    the qshape ``TOTAL`` row are exact; every top list (reasons, domains, senders) and every
    qshape domain row is left empty. So it needs no address, and it counts one raw key per
    deferred *message*, not per recipient: ``(delay reason, column, recipients)`` for a
    message whose recipients share one reason (the usual case), and ``(delay reason,
    column)`` per recipient only for a message whose recipients' reasons differ. It is
    cheaper than the full builder and holds far less.
    """

    def __init__(self, now: float, max_keys: int = 1_000) -> None:
        super().__init__(now, top_n=0, max_keys=max_keys, shape_rows=0)
        # (reason, column, recipients) -> deferred messages whose recipients share it
        self._message_keys: dict[tuple[str, int, int], int] = {}
        # (reason, column) -> recipients of deferred messages with mixed reasons
        self._reason_keys: dict[tuple[str, int], int] = {}
        self._pending_text = 0  # characters of the reasons in new raw keys since the fold

    def add_fields(
        self,
        queue_name: str,
        queue_id: str,
        arrival: int,
        size: int,
        sender: str,
        recipients: list[dict[str, str]],
        _forced_expire: bool = False,
    ) -> None:
        # The hot path of `summary all`: what every message adds, inlined.
        counts = self._queues.get(queue_name)
        if counts is None:
            counts = self._queues[queue_name] = [0, 0, 0]
        n = len(recipients)
        counts[0] += 1
        counts[1] += n
        counts[2] += size
        column = bisect_right(AGE_EDGES_SECONDS, self.now - arrival)
        self._ages[column] += 1
        if arrival <= self._oldest_arrival:
            self._note_oldest(arrival, queue_id, sender, queue_name)
        if queue_name != "deferred":
            return
        if sender == "" or sender == "MAILER-DAEMON":
            if arrival < self._oldest_bounce:
                self._oldest_bounce = arrival
        elif arrival < self._oldest_regular:
            self._oldest_regular = arrival
        if not n:
            return
        reason = recipients[0].get("delay_reason", "")
        if n > 1:
            for item in recipients:
                if item.get("delay_reason", "") != reason:
                    self._add_mixed(recipients, column)
                    return
        keys = self._message_keys
        key = (reason, column, n)
        seen = keys.get(key)
        if seen is None:
            keys[key] = 1
            self._pending_text += len(reason)
            if len(keys) + len(self._reason_keys) >= self._raw_keys:
                self._fold()
        else:
            keys[key] = seen + 1

    def _add_mixed(self, recipients: list[dict[str, str]], column: int) -> None:
        """A message whose recipients' reasons differ: counted once in each of their classes,
        its recipients one by one."""
        keys = self._reason_keys
        reasons = [item.get("delay_reason", "") for item in recipients]
        for reason in reasons:
            key = (reason, column)
            seen = keys.get(key)
            if seen is None:
                keys[key] = 1
                self._pending_text += len(reason)
            else:
                keys[key] = seen + 1
        self._count_classes(reasons)
        if len(keys) + len(self._message_keys) >= self._raw_keys:
            self._fold()

    def fold_due(self) -> bool:
        # With few raw keys one slice of a listing can fill them: also fold once their
        # reasons add up to much text, so the fold add_fields makes when full stays cheap.
        half = self._raw_keys // 2
        keys = len(self._message_keys) + len(self._reason_keys)
        return keys > half or self._pending_text > PENDING_TEXT

    def pending_reasons(self) -> list[str]:
        reasons = dict.fromkeys(self._message_reasons)
        reasons.update(dict.fromkeys(reason for reason, _column, _n in self._message_keys))
        reasons.update(dict.fromkeys(reason for reason, _column in self._reason_keys))
        return list(reasons)

    def _fold(self) -> None:
        for reason, messages in self._message_reasons.items():
            self._class(self._analyse(reason)[0]).messages += messages
        for (reason, column, n), messages in self._message_keys.items():
            group = self._class(self._analyse(reason)[0])
            group.messages += messages
            group.recipients += messages * n
            self._shape.add_total(column, messages * n)
        for (reason, column), n in self._reason_keys.items():
            group = self._class(self._analyse(reason)[0])
            group.recipients += n
            self._shape.add_total(column, n)
        self._message_reasons, self._pending_text = {}, 0
        self._message_keys, self._reason_keys = {}, {}
