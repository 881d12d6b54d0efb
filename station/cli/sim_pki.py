"""Placeholder: ``station sim pki-mirror`` is being written (issue 3)."""


def register(sim_sub) -> None:
    pass
