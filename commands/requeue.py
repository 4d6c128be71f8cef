"""``/mailq requeue HOST <ID... | filter>``: ``postsuper -r`` (new routing, new attempt)."""

from commands._act import action_spec

SPEC = action_spec(
    "requeue",
    "Requeue messages (postsuper -r): after a routing or transport fix.",
    ("/mailq requeue mx1 domain=example.com", "/mailq requeue mx1 reason=dns_tempfail"),
    metavar="<ID... | filter> [why=TEXT]",
)
