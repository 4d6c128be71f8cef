"""User-facing strings that are not part of a command's own template."""

WORKING = "Working on `/mailq {text}`…"
CRASH = (
    "Something went wrong inside mailqbot (reference `{ref}`). Nothing was changed. "
    "Try again; if it keeps failing, give the reference to whoever runs mailqbot."
)
AUDIT_FAILED = (
    "mailqbot could not write the audit record (reference `{ref}`), so the result is "
    "withheld. Check the database (DATABASE_URL) and try again."
)
NOT_IN_CHANNEL = (
    "Tip: invite @mailqbot to this channel (`/invite @mailqbot`) so results can be updated "
    "in place and long output can be attached in a thread."
)
