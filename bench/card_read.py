"""Reading CHUID + PIV Authentication certificate + PIN status of a golden card over pcscd.

Side by side in one run: the station; OpenSC ``pkcs15-tool --read-certificate 01`` reading the
same certificate; and the floor, a bare pyscard loop replaying the station's own APDUs.
Targets: fewer APDUs than OpenSC; median time within 1.5x of the floor.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from smartcard import scard

from bench.results import median_ms, record, table
from station.devices import pcsc
from station.devices.piv import PivSession, Slot
from station.devices.virtual import load_card_image
from station.devices.virtual.pcscd import IsolatedPcscd

GOLDEN = Path(__file__).resolve().parents[1].parent / "shared/icam-test-pki/cards/46_Golden_FIPS_201-2_PIV"
RUNS = 30


class Recorder:
    """Wraps the card's transmit to count (and optionally keep) the APDUs it sees."""

    def __init__(self, card):
        self.card, self.count, self.kept, self.keep = card, 0, [], False
        inner = card.transmit

        def transmit(apdu):
            self.count += 1
            if self.keep:
                self.kept.append(bytes(apdu))
            return inner(apdu)

        card.transmit = transmit


def station_read(reader: str) -> int:
    conn = pcsc.PcscConnection(reader)
    try:
        with conn.transaction():
            s = PivSession(conn)
            s.read_chuid()
            s.read_certificate(Slot.AUTHENTICATION)
            s.get_pin_status()
            return s.protocol.apdu_count
    finally:
        conn.close()


def floor_replay(reader: str, apdus: list[bytes]) -> None:
    _, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    _, card, proto = scard.SCardConnect(ctx, reader, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
    scard.SCardStatus(card)
    scard.SCardBeginTransaction(card)
    for apdu in apdus:
        scard.SCardTransmit(card, proto, list(apdu))
    scard.SCardEndTransaction(card, scard.SCARD_LEAVE_CARD)
    scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
    scard.SCardReleaseContext(ctx)


def main() -> None:
    with IsolatedPcscd() as daemon:
        os.environ["PCSCLITE_CSOCK_NAME"] = str(daemon.socket_path)
        card = load_card_image(GOLDEN)
        rec = Recorder(card)
        link = daemon.insert(card)
        reader = daemon.reader()
        try:
            rec.keep = True
            station_apdus = station_read(reader)
            rec.keep = False
            replay = list(rec.kept)
            assert len(replay) == station_apdus
            before = rec.count
            subprocess.run(["pkcs15-tool", "--read-certificate", "01"], env=daemon.env, check=True, capture_output=True)
            opensc_apdus = rec.count - before

            station_ms = median_ms(lambda: station_read(reader), RUNS)
            floor_ms = median_ms(lambda: floor_replay(reader, replay), RUNS)
            opensc_ms = median_ms(lambda: subprocess.run(["pkcs15-tool", "--read-certificate", "01"], env=daemon.env,
                                                     check=True, capture_output=True), 10)
        finally:
            daemon.remove(link)
    rows = [
        ("station (CHUID + 9A cert + PIN status)", station_apdus, f"{station_ms:.2f}"),
        ("floor: bare pyscard replay of the same APDUs", station_apdus, f"{floor_ms:.2f}"),
        ("OpenSC pkcs15-tool --read-certificate 01 (process)", opensc_apdus, f"{opensc_ms:.2f}"),
    ]
    print(table(rows, ("run", "APDUs", "median ms")))
    print(f"\nAPDUs: station/OpenSC = {station_apdus / opensc_apdus:.2f} (target < 1)")
    print(f"time: station/floor = {station_ms / floor_ms:.2f} (target <= 1.5)")
    print(f"time: station/OpenSC = {station_ms / opensc_ms:.3f} (OpenSC includes process start)")
    record([
        {"name": "card_read.apdus", "value": station_apdus, "unit": "APDUs",
         "peer": "OpenSC pkcs15-tool --read-certificate 01", "peer_value": opensc_apdus, "ratio": station_apdus / opensc_apdus},
        {"name": "card_read.median_time", "value": station_ms, "unit": "ms",
         "peer": "bare pyscard replay of the station's APDUs (floor)", "peer_value": floor_ms, "ratio": station_ms / floor_ms},
        {"name": "card_read.median_time_vs_opensc", "value": station_ms, "unit": "ms",
         "peer": "OpenSC pkcs15-tool --read-certificate 01 (whole process)", "peer_value": opensc_ms, "ratio": station_ms / opensc_ms},
    ])


if __name__ == "__main__":
    main()
