"""The Slack front end (Bolt). The only package that touches Slack objects."""
