"""The Qt-free issuance workflow: targets, PIN policy, self-test (and, next, the engine)."""
