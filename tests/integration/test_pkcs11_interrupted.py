"""A key generation killed at every point SoftHSM writes, and what discarding the key leaves.

SoftHSM rewrites an object's file for each attribute it sets (ftruncate, then write), so
killing the generating process at its n-th ``ftruncate`` leaves the token exactly as the
(n-1)-th write left it. strace attaches once the token is open and kills at each n in
turn, until a run gets through; every state in between is then discarded as the station
discards a request's key (``destroy_credential`` with the transport PIN) and must leave
nothing: OpenSC's pkcs11-tool, logged in, lists no object at all.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

from station.devices.pkcs11 import Pkcs11Token
from station.devices.pkcs11.remnants import CKA_CLASS, Remnants
from tests.conftest import SOFTHSM_MODULE, init_softhsm_token

PIN = "11223344"
KEY_ID = bytes.fromhex("5e" * 16)
GENERATE = f"""
import sys
from station.devices.pkcs11 import Pkcs11Token
token = Pkcs11Token(sys.argv[1])
token.hold_login({PIN!r})
print("open", flush=True)
sys.stdin.readline()
token.generate_key({PIN!r}, "P-256", "Derived PIV Authentication key", bytes.fromhex({KEY_ID.hex()!r}))
"""


def generate_killed_at(uri: str, n: int) -> int:
    """Generate a key pair, killed at the n-th ftruncate after the login; the exit status."""
    proc = subprocess.Popen([sys.executable, "-c", GENERATE, uri], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "open\n"
        tracer = subprocess.Popen(["strace", "-p", str(proc.pid), "-o", "/dev/null", "-e", "trace=ftruncate",
                                   "-e", f"inject=ftruncate:signal=KILL:when={n}"], stderr=subprocess.PIPE, text=True)
        assert "attached" in tracer.stderr.readline()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        code = proc.wait(timeout=60)
        tracer.wait(timeout=60)
        return code
    finally:
        proc.kill()


def listed(label: str) -> str:
    out = subprocess.run(["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", label, "--login", "--pin", PIN,
                          "--list-objects"], capture_output=True, text=True, timeout=30, check=True)
    return out.stdout


def test_discarding_a_killed_generation_leaves_nothing(softhsm_conf):
    runs: dict[int, tuple[str, str]] = {}  # n -> (label, URI)
    codes: dict[int, int] = {}
    with ThreadPoolExecutor(2) as pool:
        n = 0
        while 0 not in codes.values():  # until a run outlives its kill point: every point seen
            batch = range(n + 1, n + 9)
            for k in batch:
                label = f"kill-{k}-{uuid.uuid4().hex[:6]}"
                runs[k] = (label, init_softhsm_token(label, PIN))
            codes.update(zip(batch, pool.map(lambda k: generate_killed_at(runs[k][1], k), batch)))
            n = batch[-1]
            assert n < 400, "the key generation never finished under strace"
    killed = sorted(k for k, code in codes.items() if code == -9)
    assert killed == list(range(1, len(killed) + 1)) and len(killed) > 20, codes  # every point up to the end

    seen = set()
    for k in killed:
        label, uri = runs[k]
        token = Pkcs11Token(uri)
        with token.token.open(user_pin=PIN, rw=True) as session:
            remnants = Remnants(token.module, session.handle)
            for handle in remnants.find():
                kind = remnants._read(handle, CKA_CLASS)
                seen.add(None if kind is None else int.from_bytes(kind, sys.byteorder))
        token.destroy_credential(PIN, KEY_ID)
        assert "Object" not in listed(label), (k, listed(label))
    # the sweep met each kind of remnant: unreadable objects, public and private keys without a CKA_ID
    assert seen >= {None, 2, 3}, seen
