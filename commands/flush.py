"""``/mailq flush HOST [ID... | filter | all]``: try deferred mail now.

``all`` (or nothing) runs ``postqueue -f``; IDs or a filter run ``postqueue -i`` for each
selected deferred message (``postqueue -s`` only works for fast-flush domains).
"""

from commands._act import action_spec

SPEC = action_spec(
    "flush",
    "Try deferred messages again now: all of them, or the ones you name.",
    (
        "/mailq flush mx1",
        "/mailq flush mx1 domain=example.com",
        "/mailq flush mx1 4B7D3C1A2B",
    ),
    metavar="[ID... | filter | all]",
)
