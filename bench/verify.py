"""PKI-AUTH of a golden card over pcscd: machine time from "card present" to verdict.

Side by side in one run: the station with a warm and a cold CRL cache (CRL and OCSP modes), and
the same checks done by standard tools: OpenSC ``pkcs15-tool`` reading the certificate,
``openssl verify -crl_check`` with the same anchor, intermediate and CRL (already on disk, i.e.
warm), and ``openssl ocsp`` as client against the same responder. The station does strictly
more (PIN, challenge signature, CHUID, Security Object and biometric signatures). Target: at
least 3x faster than the tool pipeline with a warm cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

from bench.results import median_ms, record, table
from station.issuance.pkiauth import pki_auth
from station.validation.trust import TrustProfile
from station.devices import pcsc
from station.devices.piv import PivSession
from station.devices.virtual import load_card_image
from station.devices.virtual.pcscd import IsolatedPcscd
from station.sim.pki_mirror import PkiMirror

ICAM = Path(__file__).resolve().parents[1].parent / "shared/icam-test-pki"
GOLDEN = ICAM / "cards/46_Golden_FIPS_201-2_PIV"
PIN = "246810"
RUNS = 15


class Pin:
    def request_pin(self, *, pin_kind, tries_left):
        return PIN


def station_verify(reader: str, profile: TrustProfile, mode: str, cache: Path) -> None:
    conn = pcsc.PcscConnection(reader)
    try:
        with conn.transaction():
            verdict = pki_auth(PivSession(conn), profile, Pin(), mode=mode, cache_dir=cache)
    finally:
        conn.close(reset=True)
    assert verdict.accepted, verdict.details


def tool_files(work: Path) -> dict[str, Path]:
    """The anchor, the intermediate (from its AIA bundle) and the CRL the tools need."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

    files = {"root": ICAM / "pki/roots/00_ICAM_Test_Card_Root_CA.crt", "crl": work / "ca.crl.pem"}
    leaf = x509.load_pem_x509_certificate((GOLDEN / "3 - ICAM_PIV_Auth_SP_800-73-4.crt").read_bytes())
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    with warnings.catch_warnings():  # GSA's bundle is BER (unsorted SET); cryptography says so, and reads it
        warnings.simplefilter("ignore", UserWarning)
        bundle = pkcs7.load_der_pkcs7_certificates((ICAM / "pki/aia/certsIssuedToICAMTestCardSigningCA.p7c").read_bytes())
    issuer = next(c for c in bundle if c.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest == aki
                  and c.issuer == x509.load_pem_x509_certificate(files["root"].read_bytes()).subject)
    files["issuer"] = work / "issuer.pem"
    files["issuer"].write_bytes(issuer.public_bytes(Encoding.PEM))
    subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(ICAM / "pki/crls/ICAMTestCardGen3SigningCA.crl"),
                    "-out", str(files["crl"])], check=True)
    return files


def tool_pipeline(env: dict, files: dict[str, Path], ocsp_url: str, work: Path) -> None:
    cert = subprocess.run(["pkcs15-tool", "--read-certificate", "01"], env=env, check=True, capture_output=True).stdout
    leaf = work / "leaf.pem"
    leaf.write_bytes(cert)
    subprocess.run(["openssl", "verify", "-crl_check", "-CAfile", str(files["root"]), "-untrusted", str(files["issuer"]),
                    "-CRLfile", str(files["crl"]), "-policy", "2.16.840.1.101.3.2.1.48.11", "-explicit_policy", str(leaf)],
                   check=True, capture_output=True)
    out = subprocess.run(["openssl", "ocsp", "-issuer", str(files["issuer"]), "-cert", str(leaf), "-url", ocsp_url,
                          "-CAfile", str(files["root"]), "-verify_other", str(files["issuer"]), "-no_nonce"],
                         check=True, capture_output=True, text=True).stdout
    assert ": good" in out, out


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    try:
        with IsolatedPcscd() as daemon, PkiMirror(ICAM) as mirror:
            os.environ["PCSCLITE_CSOCK_NAME"] = str(daemon.socket_path)
            profile = TrustProfile.load(mirror.write_profile(work / "profile.toml"))
            ocsp_url = profile.map_url("http://ocspGen3.apl-test.cite.fpki-lab.gov")
            files = tool_files(work)
            link = daemon.insert(load_card_image(GOLDEN, pin=PIN))
            reader = daemon.reader()
            try:
                warm = work / "warm-cache"
                station_verify(reader, profile, "crl", warm)  # fill the cache
                crl_warm = median_ms(lambda: station_verify(reader, profile, "crl", warm), RUNS)
                ocsp_warm = median_ms(lambda: station_verify(reader, profile, "ocsp", warm), RUNS)
                cold_dirs = iter(work / f"cold-{i}" for i in range(RUNS))
                crl_cold = median_ms(lambda: station_verify(reader, profile, "crl", next(cold_dirs)), RUNS)
                tools = median_ms(lambda: tool_pipeline(daemon.env, files, ocsp_url, work), 10)
            finally:
                daemon.remove(link)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [
        ("station, CRL mode, warm cache", f"{crl_warm:.1f}", f"{tools / crl_warm:.1f}x"),
        ("station, OCSP mode (warm AIA cache)", f"{ocsp_warm:.1f}", f"{tools / ocsp_warm:.1f}x"),
        ("station, CRL mode, cold cache", f"{crl_cold:.1f}", f"{tools / crl_cold:.1f}x"),
        ("tools: pkcs15-tool + openssl verify -crl_check + openssl ocsp", f"{tools:.1f}", "1.0x"),
    ]
    print(table(rows, ("run (golden card 46, over pcscd)", "median ms", "speed-up vs tools")))
    print(f"\ntarget: tools/station (warm) >= 3; measured {tools / crl_warm:.1f}")
    peer = "pkcs15-tool + openssl verify -crl_check + openssl ocsp (tool pipeline)"
    record([
        {"name": "verify.crl_warm", "value": crl_warm, "unit": "ms", "peer": peer, "peer_value": tools, "ratio": crl_warm / tools},
        {"name": "verify.ocsp_warm", "value": ocsp_warm, "unit": "ms", "peer": peer, "peer_value": tools, "ratio": ocsp_warm / tools},
        {"name": "verify.crl_cold", "value": crl_cold, "unit": "ms", "peer": peer, "peer_value": tools, "ratio": crl_cold / tools},
    ])


if __name__ == "__main__":
    main()
