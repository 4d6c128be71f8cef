"""``/mailq diagnose``: evidence from DNS, the host, blocklists and the queue, then verdicts.

Modules: ``config`` (the ``[diagnose]`` section), ``dns`` (bot-side lookups), ``dnsbl``,
``host`` (fixed remote commands and pure parsers of their output), ``lint`` (settings),
``evidence`` (what the queue says), ``verdicts`` (the reasoning) and ``runner`` (checks run
concurrently, each with its own timeout, inside an overall budget).
"""
