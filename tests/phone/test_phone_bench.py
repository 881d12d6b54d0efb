"""bench/phone.py in miniature (``--quick``): the service, the issuer thread, the client process,
EST and the floor at 1, 10 and 50 clients, so that the benchmark cannot rot. No figure is
asserted (a shared machine's numbers are not a test)."""

from __future__ import annotations

from bench import phone


def test_the_phone_benchmark_runs_tiny(capsys):
    assert phone.main(["--quick"]) == 0  # 1: some operation failed (the ERRORS lines say which)
    out = capsys.readouterr().out
    assert "EST enroll/s" in out and "floor ops/s" in out
    assert sum(line.startswith(("PASS", "FAIL")) for line in out.splitlines()) == 3
    assert "ERRORS" not in out


def test_percentile_is_the_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert phone.percentile(values, 0.99) == 99.0 and phone.percentile(values, 0.5) == 50.0
    assert phone.percentile([7.0], 0.99) == 7.0
