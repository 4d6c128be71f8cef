"""Queue actions: selecting messages, the plan rules, the plan state machine, performing."""
