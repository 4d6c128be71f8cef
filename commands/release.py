"""``/mailq release HOST <ID... | filter>``: ``postsuper -H`` (back from hold)."""

from commands._act import action_spec

SPEC = action_spec(
    "release",
    "Release held messages (postsuper -H) so they are tried again.",
    ("/mailq release mx1 sender=@bulk.example", "/mailq release mx1 queue=hold"),
    metavar="<ID... | filter> [why=TEXT]",
)
