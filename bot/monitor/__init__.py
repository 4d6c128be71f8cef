"""Proactive monitoring: polls, rules, incidents, leases, charts and metrics."""
