"""The only SQL outside ``bot/db``: one module per kind of record.

``audit`` (the hash-chained trail, its key and checkpoint in ``audit_key``), ``runs`` (one
row per request), ``plans`` (stored plans and their compare-and-set transitions),
``dedup`` (Slack deliveries already handled), ``status`` (open incidents and unfinished
plans, for the metrics). Callers get plain values or ORM rows; no
caller builds a query itself.
"""
