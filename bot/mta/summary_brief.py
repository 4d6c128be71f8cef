"""The fleet view's per-host summary: exact totals without the top lists."""

from __future__ import annotations

from bot.mta.reasons import analyse
from bot.mta.summary import SummaryBuilder


class BriefSummaryBuilder(SummaryBuilder):
    """A ``SummaryBuilder`` for a fleet row: counts only, no top lists.

    Queues, ages, the oldest messages, the deferred classes (messages and recipients) and
    the qshape ``TOTAL`` row are exact; every top list (reasons, domains, senders) and every
    qshape domain row is left empty. Per deferred recipient it counts one raw key
    ``(delay reason, column)``, so it is cheaper than the full builder and holds far less.
    """

    def __init__(self, now: float, max_keys: int = 1_000) -> None:
        super().__init__(now, top_n=0, max_keys=max_keys, shape_rows=0)
        self._reason_keys: dict[tuple[str, int], int] = {}

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
        column = self._count_message(queue_name, queue_id, arrival, size, sender, recipients)
        if queue_name != "deferred":
            return
        keys, first, mixed = self._reason_keys, None, False
        for item in recipients:
            reason = item.get("delay_reason", "")
            key = (reason, column)
            keys[key] = keys.get(key, 0) + 1
            if first is None:
                first = reason
            elif reason != first:
                mixed = True
        self._deferred_message(sender, arrival, recipients, first, mixed)
        if len(keys) >= self._raw_keys:
            self._fold()

    def _fold(self) -> None:
        for reason, messages in self._message_reasons.items():
            self._class(analyse(reason)[0]).messages += messages
        for (reason, column), n in self._reason_keys.items():
            group = self._class(analyse(reason)[0])
            group.recipients += n
            self._shape.add_total(column, n)
        self._message_reasons, self._reason_keys = {}, {}
