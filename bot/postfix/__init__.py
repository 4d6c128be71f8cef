"""Postfix knowledge: command templates (``tools``), pure output parsers, reason classes and
summaries.

Nothing in this package does I/O; ``bot.remote.ssh`` runs the ``RemoteCommand`` values built here.
"""

from bot.postfix.models import QUEUE_NAMES, QueueMessage, Recipient, is_queue_id
from bot.postfix.postfix import (
    PostqueueJsonParser,
    PostqueueListParser,
    QueueParser,
    parse_postqueue_list,
    parser_for,
)
from bot.postfix.reasons import ReasonClass, classify, normalise
from bot.postfix.summary import QueueSummary, SummaryBuilder

__all__ = [
    "QUEUE_NAMES",
    "PostqueueJsonParser",
    "PostqueueListParser",
    "QueueMessage",
    "QueueParser",
    "QueueSummary",
    "ReasonClass",
    "Recipient",
    "SummaryBuilder",
    "classify",
    "is_queue_id",
    "normalise",
    "parse_postqueue_list",
    "parser_for",
]
