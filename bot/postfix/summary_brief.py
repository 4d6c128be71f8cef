"""The fleet view's per-host summary: exact totals without the top lists."""

from __future__ import annotations

from bot.postfix.summary import SummaryBuilder

PENDING_TEXT = 64 * 1024  # characters of new reasons that make a fold due


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
        column = self._count_message(queue_name, queue_id, arrival, size, sender, recipients)
        if queue_name != "deferred":
            return
        keys, first, mixed = self._reason_keys, None, False
        for item in recipients:
            reason = item.get("delay_reason", "")
            key = (reason, column)
            n = keys.get(key)
            if n is None:
                keys[key] = 1
                self._pending_text += len(reason)
            else:
                keys[key] = n + 1
            if first is None:
                first = reason
            elif reason != first:
                mixed = True
        self._deferred_message(sender, arrival, recipients, first, mixed)
        if len(keys) >= self._raw_keys:
            self._fold()

    def fold_due(self) -> bool:
        # With few raw keys one slice of a listing can fill them: also fold once their
        # reasons add up to much text, so the fold add_fields makes when full stays cheap.
        half = self._raw_keys // 2
        return len(self._reason_keys) > half or self._pending_text > PENDING_TEXT

    def pending_reasons(self) -> list[str]:
        reasons = dict.fromkeys(self._message_reasons)
        reasons.update(dict.fromkeys(reason for reason, _column in self._reason_keys))
        return list(reasons)

    def _fold(self) -> None:
        for reason, messages in self._message_reasons.items():
            self._class(self._analyse(reason)[0]).messages += messages
        for (reason, column), n in self._reason_keys.items():
            group = self._class(self._analyse(reason)[0])
            group.recipients += n
            self._shape.add_total(column, n)
        self._message_reasons, self._reason_keys, self._pending_text = {}, {}, 0
