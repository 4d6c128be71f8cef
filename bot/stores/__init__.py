"""The only SQL outside ``bot/db``: one module per kind of record.

``audit`` (the hash-chained trail, its key and checkpoint in ``audit_key``), ``runs`` (one
row per request), ``plans`` (stored plans and their compare-and-set transitions),
``dedup`` (Slack deliveries already handled), ``status`` (open incidents and unfinished
plans, for the metrics); for the monitor: ``samples`` (the poll history), ``leases`` (who
polls which host, and the pollers' heartbeats), ``incidents`` and ``groups`` (the incident
lifecycle), ``silences``, ``budget`` (a channel's shared post budget); ``retention``
(pruning and downsampling). Callers get plain values, small frozen views or ORM rows; no
caller builds a query itself.
"""
