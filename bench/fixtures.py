"""What the benchmarks set up around the station: a private SoftHSM token directory."""

from __future__ import annotations

import os
from pathlib import Path


def softhsm_dir(work: Path) -> Path:
    """A SoftHSM configuration of its own under ``work`` (token directory ``softhsm/tokens``,
    file object store), made this process's through ``SOFTHSM2_CONF``, so that a benchmark's
    tokens never meet the machine's; returns the folder."""
    hsm_dir = work / "softhsm"
    (hsm_dir / "tokens").mkdir(parents=True)
    conf = hsm_dir / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {hsm_dir / 'tokens'}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    return hsm_dir
