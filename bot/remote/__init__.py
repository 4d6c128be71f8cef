"""Remote I/O: the command value, the one SSH executor, and the audited gateway over it."""
