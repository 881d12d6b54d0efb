"""The tamper-evident audit trail: an append-only hash chain with signed chain heads."""
