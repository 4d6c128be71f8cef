"""User-facing strings that are not part of a command's own template."""

WORKING = "Working on `/mailq {text}`…"
CRASH = (
    "Something went wrong inside mailqbot (reference `{ref}`). Nothing was changed. "
    "Try again; if it keeps failing, give the reference to whoever runs mailqbot."
)
AUDIT_FAILED = (
    "mailqbot could not write the audit record (reference `{ref}`), so the result is "
    "withheld. Nothing was changed on any host. Check the database (DATABASE_URL) and try "
    "again."
)
AUDIT_FAILED_AFTER_CHANGE = (
    "This ran on {hosts}, but mailqbot could not record the result in its audit trail "
    "(reference `{ref}`): the trail shows what was about to run, with its outcome unknown. "
    "The result below is what the host reported. Check the database (DATABASE_URL) before "
    "changing anything else."
)
NOT_IN_CHANNEL = (
    "Tip: invite @mailqbot to this channel (`/invite @mailqbot`) so results can be updated "
    "in place and long output can be attached in a thread."
)
PRIVATE_FILE_DM = (
    "{title}, as you asked with `/mailq show … body`. It holds private mail: only you can "
    "see it here. Do not share it."
)
PRIVATE_FILE_SENT = (
    "The file with every header, envelope record and the body excerpt is in your direct "
    "messages with mailqbot (only you can see it)."
)
PRIVATE_FILE_NOT_SENT = (
    "Slack did not take the file to your direct messages with mailqbot, so it is not "
    "shared anywhere. Ask whoever runs mailqbot to enable the app's Messages tab, then try "
    "again."
)
MISSING_SCOPE = (
    "Slack refused mailqbot's {method} call: the app lacks the `{scope}` scope (reference "
    "`{ref}`). Ask whoever runs mailqbot to add it under OAuth & Permissions and reinstall "
    "the app."
)
