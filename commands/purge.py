"""``/mailq purge HOST <ID... | filter | ALL deferred> why=...``: delete mail, after approval.

Always a plan: the exact messages are listed and stored, another person approves, and only
those still matching are deleted (``postsuper -d -`` with the IDs on standard input).
"""

from commands._act import action_spec

SPEC = action_spec(
    "purge",
    "Delete messages: makes a plan that another person must approve.",
    (
        '/mailq purge mx1 domain=spam.example why="INC-42 spam run"',
        '/mailq purge mx1 4B7D3C1A2B 5C8E4D2B3C why="customer asked"',
        '/mailq purge mx1 ALL deferred why="INC-43 queue full of backscatter"',
    ),
    metavar="<ID... | filter | ALL deferred> why=TEXT",
)
