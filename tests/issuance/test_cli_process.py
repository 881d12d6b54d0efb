"""The ``station`` process itself: no core dumps, bounded standard input (issue 9 §5)."""

from __future__ import annotations

import io
import os
import resource
import subprocess
import sys
import time

import pytest

from station.secret_input import MAX_LINE, InputError, read_line, read_lines

STATION = [sys.executable, "-m", "station"]
# `station issue` reads its secrets first: it waits on standard input before touching a home
ISSUE = ["issue", "--home", "/nonexistent-station-home", "--applicant-reader", "none", "--target", "pkcs11:token=t",
         "--aal", "2", "--registrar", "reg", "--approver", "sup"]


def _core_limit(pid: int) -> str:
    with open(f"/proc/{pid}/limits") as limits:
        return next(line for line in limits if line.startswith("Max core file size")).split()[4:6]


def test_station_process_turns_core_dumps_off():
    # the parent allows core files: only the station process itself can turn them off
    unlimited = lambda: resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))  # noqa: E731
    proc = subprocess.Popen([*STATION, *ISSUE], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=unlimited)
    try:
        deadline = time.monotonic() + 30
        while _core_limit(proc.pid) != ["0", "0"] and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert _core_limit(proc.pid) == ["0", "0"], "station did not set RLIMIT_CORE to 0"
        assert proc.poll() is None  # still waiting for its secrets: the limit holds while they are read
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("stdin, message", [
    (b"x" * (8 * 1024 * 1024) + b"\n", f"longer than {MAX_LINE} bytes"),
    (b"\xff\xfepassword\n", "is not UTF-8 text"),
])
def test_bad_stdin_line_is_one_line_exit_2(stdin, message):
    result = subprocess.run([*STATION, *ISSUE], input=stdin, capture_output=True, timeout=60)
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert message in err and "registrar secret" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_reader_reads_no_more_than_its_bound():
    stream = io.BytesIO(b"y" * (50 * MAX_LINE))
    with pytest.raises(InputError):
        read_line(stream)
    assert stream.tell() <= MAX_LINE + 2
    assert read_line(io.BytesIO(b"p" * MAX_LINE + b"\r\n")) == "p" * MAX_LINE
    assert read_line(io.StringIO("")) is None
    assert read_lines(("a", "b", "c"), io.StringIO("1\n2\n")) == {"a": "1", "b": "2"}
