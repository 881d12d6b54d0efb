"""No core dump of a station process: its memory holds PINs, passwords and the CA key's PIN.

A process that reads secrets turns itself non-dumpable at start: ``RLIMIT_CORE`` 0 (no core
file, inherited by children) and ``prctl(PR_SET_DUMPABLE, 0)`` (no core either way, and its
/proc/<pid>/mem is no longer readable by other processes of the same user; proc(5),
prctl(2)). Both are best effort: a platform without them keeps running.
"""

from __future__ import annotations

import ctypes
import resource

PR_SET_DUMPABLE = 4  # <linux/prctl.h>


def disable() -> None:
    """No core file for this process and the processes it starts."""
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass
    try:
        # the C library is already in the process: its symbols through dlopen(NULL), without
        # ctypes.util.find_library (which imports subprocess and runs ldconfig: a few ms of a start)
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass
