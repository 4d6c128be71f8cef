"""``/mailq hold HOST <ID... | filter>``: ``postsuper -h`` (park messages, keep them)."""

from commands._act import action_spec

SPEC = action_spec(
    "hold",
    "Put messages on hold (postsuper -h): they stay queued but are not tried.",
    ("/mailq hold mx1 sender=@bulk.example", "/mailq hold mx1 4B7D3C1A2B"),
    metavar="<ID... | filter> [why=TEXT]",
)
