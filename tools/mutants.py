"""Hand-made mutants: break one rule at a time and check that the suite notices.

Usage: ``make mutants`` (or ``.venv/bin/python -m tools.mutants [RULE ...] [--list]``).

Each :class:`Mutant` names a rule the station must keep, the one place in a rule-bearing
module that enforces it (an exact piece of source text, which must occur once), what that
text becomes when the rule is gone, and the tests that should fail then. The tree is copied
to a temporary folder (the working tree is never touched, so an interrupted run leaves
nothing behind); the chosen tests run once unmutated (they must pass, or every mutant would
look caught), then once per mutant. One line per rule: ``caught RULE`` when those tests
fail, ``survived RULE`` when they pass with the rule gone; ``stale RULE`` when the source
text is no longer there once (the code moved: update the list). Exit code 0 only when every
rule is caught.

A survivor is a rule no test guards: write the test that fails without it, then keep it
caught here. Add a mutant with every new rule.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis", "*.egg-info", "build")


@dataclass(frozen=True)
class Mutant:
    rule: str
    path: str
    before: str
    after: str
    tests: tuple[str, ...]


M = Mutant
CONFORMANCE = "tests/validation/test_conformance.py"
OPERATORS_TESTS = "tests/issuance/test_operators.py"
ENGINE_TRUST = "tests/issuance/test_engine_trust.py"
CANCEL_TESTS = "tests/issuance/test_cancel.py"
BINDING_TESTS, PHONE_ABUSE = "tests/unit/test_enrollment_binding.py", "tests/phone/test_phone_abuse.py"
PHONE_ISSUE, PHONE_SERVICE = "tests/phone/test_phone_issue.py", "tests/phone/test_phone_service.py"
PIV_TARGET, PIV_CLI = "tests/integration/test_piv_target.py", "tests/issuance/test_issue_piv_cli.py"
MUTANTS: tuple[Mutant, ...] = (
    # --- the strict in-person checks of a PIV card (FIPS 201-3 §6.2, SP 800-73-4, SP 800-76-2)
    M("certificate UUID agrees with the CHUID's", "station/validation/card_checks.py",
      "if ids.uuid is not None and ids.uuid != chuid.card_uuid.bytes:", "if False:", (CONFORMANCE,)),
    M("certificate FASC-N agrees with the CHUID's", "station/validation/card_checks.py",
      "if ids.fascn is not None and ids.fascn != chuid.fascn:", "if False:", (CONFORMANCE,)),
    M("biometric CBEFF header FASC-N agrees with the CHUID's", "station/validation/card_checks.py",
      "if record.fascn != chuid.fascn:", "if False:", (CONFORMANCE,)),
    M("biometric record is valid now", "station/validation/card_checks.py",
      "if not record.not_before <= self.now <= record.not_after:", "if False:", (CONFORMANCE,)),
    M("biometric record does not expire before the CHUID", "station/validation/card_checks.py",
      "if chuid is not None and record.not_after.date() < chuid.expiry:", "if False:", (CONFORMANCE,)),
    M("CHUID not expired", "station/validation/card_checks.py",
      "if chuid.expiry < self.now.date():", "if False:", (CONFORMANCE,)),
    M("content signer holds id-PIV-content-signing", "station/validation/card_checks.py",
      "if OID_PIV_CONTENT_SIGNING not in usages:", "if False:", ("tests/validation/test_rule_guards.py",)),
    M("Security Object hashes match the objects", "station/validation/card_checks.py",
      "elif hashlib.new(algo, data).digest() != digest:", "elif False:", (CONFORMANCE,)),
    M("subjectKeyIdentifier is the hash of the key", "station/validation/card_checks.py",
      "if ski != expected:", "if False:", (CONFORMANCE,)),
    M("PIV Authentication certificate does not outlive the CHUID", "station/validation/card_checks.py",
      "if cert is not None and cert.not_valid_after_utc.date() > chuid.expiry:", "if False:", (CONFORMANCE,)),
    # --- path validation and revocation (RFC 5280, RFC 6960)
    M("end-entity CRL required in CRL mode", "station/validation/validation.py",
      '"crl": (RevocationCheckingRule.CRL_REQUIRED,', '"crl": (RevocationCheckingRule.CHECK_IF_DECLARED_SOFT,',
      ("tests/validation/test_rule_guards.py",)),
    M("OCSP answer required in OCSP mode", "station/validation/validation.py",
      'if self.profile.revocation == "ocsp":\n            await verify_ocsp_response', 'if False:\n            await verify_ocsp_response',
      (CONFORMANCE,)),
    # --- PKI-AUTH: the challenge and the PIN
    M("challenge signed by the card's 9A key", "station/validation/verdict.py",
      "except (InvalidSignature, ValueError):\n        # Decisive", "except ():\n        # Decisive", (CONFORMANCE,)),
    M("last PIN try is not spent unasked", "station/issuance/pkiauth.py",
      "if tries_left == 1 and not allow_last_try:", "if False:", ("tests/integration/test_pkiauth.py",)),
    # --- the Derived PIV Authentication certificate (SP 800-157, FIPS 201-3)
    M("proof of possession: the CSR's signature verifies", "station/ca/profile.py",
      "if not req.is_signature_valid:", "if False:", ("tests/ca/test_proof_of_possession.py",)),
    M("AAL3 only onto hardware", "station/ca/profile.py",
      "if aal is Aal.AAL3 and not target.is_hardware:", "if False:", ("tests/ca/test_profile.py",)),
    M("validity capped by the PIV Authentication certificate", "station/ca/profile.py",
      "\"the PIV Authentication certificate's notAfter\": piv_auth.not_valid_after_utc,",
      "\"the PIV Authentication certificate's notAfter\": piv_auth.not_valid_after_utc + dt.timedelta(days=3650),",
      ("tests/ca/test_profile.py",)),
    # --- the applicant's new PIN (SP 800-157 §3.4, SP 800-63B §5.1.1.2)
    M("new PIN is not a sequence", "station/issuance/pin_policy.py",
      "if _is_sequence(pin):", "if False:", ("tests/unit/test_pin_policy.py",)),
    M("new PIN is not a common value", "station/issuance/pin_policy.py",
      "if pin.lower() in COMMON:", "if False:", ("tests/unit/test_pin_policy.py",)),
    # --- the issuance workflow: people (SP 800-157 §3, FIPS 201-3 §2.1 separation of duties)
    M("one card, one person: the same FASC-N (enrolment and applicants)", "station/service/operators.py",
      "same.append(Operator.card_fascn == op.card_fascn.upper())", "pass", (OPERATORS_TESTS,)),
    M("one card, one person: the same card UUID (enrolment and applicants)", "station/service/operators.py",
      "same.append(Operator.card_uuid == op.card_uuid.lower())", "pass", (OPERATORS_TESTS,)),
    M("one card, one person: the same cardholder UUID (enrolment and applicants)", "station/service/operators.py",
      "same.append(Operator.cardholder_uuid == op.cardholder_uuid.lower())", "pass", (OPERATORS_TESTS,)),
    M("applicant is not an operator: the same FASC-N, or another card of the same person", "station/issuance/engine.py",
      "if (o := _fascn(other)) and _same_person(person, o)", "if False", (OPERATORS_TESTS, ENGINE_TRUST)),
    M("separation of duties: the approver is not the registrar", "station/service/issuance.py",
      "if registrar is not None and same_person(op, registrar):", "if False:", ("tests/issuance/test_engine.py",)),
    M("the operator holds the role the action needs", "station/issuance/signin.py",
      "if role.value not in signed.roles:", "if False:", ("tests/issuance/test_signin.py",)),
    M("one PIV card is one operator", "station/service/operators.py",
      "if holder is not None:", "if False:", (OPERATORS_TESTS,)),
    M("active-credential limit per applicant", "station/issuance/engine.py",
      'if active >= self.max_active:\n            raise self._refuse(registrar, IssuanceRefused.Code.ACTIVE_CREDENTIALS',
      'if False:\n            raise self._refuse(registrar, IssuanceRefused.Code.ACTIVE_CREDENTIALS', ("tests/issuance/test_engine.py",)),
    # --- the issuance workflow: the records are not the authority
    M("a step acts only on a request the audit chain backs", "station/audit/backing.py",
      "problems = _request_said(request_id, state, registrar, approver, replay)\n    if problems:",
      "problems = _request_said(request_id, state, registrar, approver, replay)\n    if False:", (ENGINE_TRUST,)),
    M("the limit counts the credentials the chain has active, not the rows", "station/service/requests.py",
      "return sum(1 for serial, credential in audited.items() if credential.active and serial != replaced)",
      "return len(session.execute(select(Credential.serial).where(Credential.serial.in_(list(audited)), "
      "Credential.status == 'active', Credential.serial != (replaced or ''))).all())", (ENGINE_TRUST,)),
    M("an ended request revokes a credential the chain has active, whatever its row says", "station/issuance/engine.py",
      "return credential is not None and (credential.audited is None or credential.audited.active)",
      "return credential is not None and credential.status == 'active'", (ENGINE_TRUST,)),
    M("approval by a supervisor whose sign-in is in the chain", "station/issuance/engine.py",
      "if record.approver is None or not record.approver_signed_in:", "if False:", (ENGINE_TRUST,)),
    M("resume only onto the request's own device", "station/issuance/engine.py",
      "if device is not None and opened_for is not None and not device.same_device(opened_for):", "if False:", (ENGINE_TRUST,)),
    M("transitions compare-and-set the request's state", "station/service/requests.py",
      '_REQUESTS.c.id == bindparam("rid"), _REQUESTS.c.state == bindparam("expected"))', '_REQUESTS.c.id == bindparam("rid"))',
      ("tests/issuance/test_engine.py",)),
    M("new PIN checked before the key is generated", "station/issuance/engine.py",
      "                check_new_pin(pin, confirmation)\n", "                pass\n", ("tests/issuance/test_engine.py",)),
    M("a revocation in the audit trail stays a revocation (CRL)", "station/audit/backing.py",
      'elif action == "credential.revoked" and ev.object_id in self.credentials:', "elif False:",
      ("tests/ca/test_tamper.py",)),
    M("audit verify holds the rows against the chain", "station/audit/verify.py",
      "report.rows = check_records(session)", "report.rows = []", ("tests/ca/test_tamper.py",)),
    M("selftest only for a credential this station issued", "station/cli/issue.py",
      "if record is None or record.certificate_pem.encode() != cert.public_bytes(Encoding.PEM):", "if False:",
      ("tests/issuance/test_cli_outputs.py",)),
    # --- secrets and the machine
    M("no core dump of a station process", "station/core_dumps.py",
      "resource.setrlimit(resource.RLIMIT_CORE, (0, 0))", "pass", ("tests/issuance/test_cli_process.py",)),
    M("a stdin line is bounded", "station/secret_input.py",
      "if len(body) > MAX_LINE:", "if False:", ("tests/issuance/test_cli_process.py",)),
    M("the station home is its owner's only", "station/home.py",
      "os.chmod(path, 0o700)", "pass", ("tests/ca/test_home.py",)),
    M("the applicant's card is held exclusively", "station/devices/pcsc.py",
      "scard.SCARD_SHARE_EXCLUSIVE if exclusive else", "scard.SCARD_SHARE_SHARED if exclusive else",
      ("tests/issuance/test_issue_cli.py::test_applicant_card_is_held_exclusively",)),
    M("AIA/CRL URLs to loopback or link-local refused unless mapped", "station/validation/fetch.py",
      "if address.is_loopback or address.is_link_local or address.is_unspecified:", "if False:",
      ("tests/validation/test_fetch_limits.py",)),
    # --- the audit trail
    M("audit event links to the one before it (prev_hash)", "station/audit/verify.py",
      " or event.prev_hash != verified[expected - 1]:", ":", ("tests/ca/test_audit.py",)),
    M("checkpoint signatures verify", "station/audit/verify.py",
      "verify_signature(key, cp.signature, chain.checkpoint_message(cp.seq, cp.head_hash, cp.signed_at), hashes.SHA256())",
      "pass", ("tests/ca/test_audit.py",)),
    M("no secret enters an audit event", "station/audit/chain.py",
      "if words & _FORBIDDEN_WORDS or joined in _FORBIDDEN_WORDS or \"privatekey\" in joined:", "if False:",
      ("tests/ca/test_audit.py",)),
    # --- an issuance a screen can drive (issue 10): cancel, prompts across threads, one composition root
    M("a cancelled issuance is left resumable, never ended failed", "station/issuance/engine.py",
      "        except Cancelled as exc:  # stopped at a safe point: left as it is, to resume or cancel\n", "        except ZeroDivisionError as exc:\n",
      (CANCEL_TESTS,)),
    M("a card session sends no command once cancelled (a PIN typed as Cancel is pressed is never sent)",
      "station/devices/piv/session.py", 'check_cancel(self.cancel, f"before {name}")', "pass", (CANCEL_TESTS,)),
    M("the engine hands its cancel token to the card and the target", "station/issuance/engine.py",
      "                device.cancel = self.cancel_token", "                pass", (CANCEL_TESTS,)),
    M("requests cancel --target deletes the run's key and certificate", "station/issuance/targets/pkcs11.py",
      "self.token.destroy_credential(pin, self.key_id)", "pass", (CANCEL_TESTS,)),
    M("a cancel abandons an operator's password check at once", "station/issuance/signin.py",
      "while not done.wait(_CANCEL_POLL):", "while not done.wait(None):", ("tests/issuance/test_signin.py",)),
    M("a prompt's answer is emptied when the worker takes it", "station/issuance/bridge.py",
      "value, self._value = self._value, None", "value = self._value", ("tests/issuance/test_bridge.py",)),
    M("the composition root resets a card when it lets it go", "station/devices/pcsc.py",
      "conn.close(reset=True)", "conn.close()", ("tests/issuance/test_session.py",)),
    # --- the Qt interface (issue 11)
    M("the kiosk empties its PIN entries once the prompt is answered", "station/ui/kiosk.py",
      "    def _clear_fields(self) -> None:\n        for entry in (self.pin, self.confirmation):\n            entry.clear()\n",
      "    def _clear_fields(self) -> None:\n        pass\n", ("tests/ui/test_kiosk.py",)),
    M("the approval lock empties the supervisor's password once handed to the engine", "station/ui/approval.py",
      "        answered = prompt.answer(self.password.text())\n        self.password.clear()\n",
      "        answered = prompt.answer(self.password.text())\n", ("tests/ui/test_approval.py",)),
    M("the registrar's sign-in dialog empties its password after handing it on", "station/ui/wizard.py",
      "            self.prompt.decline(\"the operator did not sign in\")\n        self.secret.clear()\n",
      "            self.prompt.decline(\"the operator did not sign in\")\n", ("tests/ui/test_wizard.py",)),
    M("PKI-AUTH after approval waits for the applicant's card in a reader", "station/wizard/flow.py",
      "if self.applicant is None and (self.request_id is None or self.state is RequestState.APPROVED):",
      "if self.applicant is None and self.request_id is None:", ("tests/ui/test_wizard_paths.py",)),
    M("the wizard's Cancel reaches the running operation", "station/ui/controller.py",
      "            self.bridge.cancel()", "            pass", ("tests/ui/test_wizard.py",)),
    M("a phone's code that arrives after the wait has ended is not shown", "station/wizard/flow.py",
      "            if self.view().status is Status.BUSY:\n                self.phone = replace(phone, uri=event.uri,",
      "            if True:\n                self.phone = replace(phone, uri=event.uri,", ("tests/unit/test_wizard_flow.py",)),
    M("an expired phone code is no longer painted", "station/ui/phone.py",
      "self.qr.set_modules(self.flow.phone.modules if left > 0 else ())", "self.qr.set_modules(self.flow.phone.modules)",
      ("tests/ui/test_phone.py",)),
    M("the phone's QR code is drawn 1:1 onto the screen's pixels (sharp at any scale)", "station/ui/phone.py",
      "            image.setDevicePixelRatio(ratio)  # drawn 1:1", "            pass  # drawn 1:1", ("tests/ui/test_phone.py",)),
    M("discarding a key also removes what a killed key generation left without a CKA_ID",
      "station/devices/pkcs11/token.py", "Remnants(self.module, session.handle).destroy()", "pass",
      ("tests/integration/test_pkcs11_interrupted.py",)),
    M("a PIN is asked again only of a person who can type it again", "station/issuance/pkiauth.py",
      "if not asks_again or exc.retries_left is None or exc.retries_left < 1:",
      "if exc.retries_left is None or exc.retries_left < 1:", ("tests/integration/test_pkiauth.py",)),
    M("a job submitted before the deferred opening runs after it", "station/ui/context.py",
      "        self.open_deferred()\n        job = self.worker.run", "        job = self.worker.run",
      ("tests/ui/test_context.py",)),
    # --- PIV tokens (docs/piv-tokens.md)
    M("a token keeping the contactless rules is refused before anything is written", "station/issuance/targets/piv.py",
      "            except SecurityStatusNotSatisfied:\n                raise _contactless() from None",
      "            except SecurityStatusNotSatisfied:\n                pass", (PIV_TARGET,)),
    M("an attestation must name the generated key", "station/issuance/targets/attestation.py",
      "if _spki(attestation.public_key()) != _spki(public_key):", "if False:", ("tests/unit/test_attestation.py",)),
    M("an attestation must chain to a configured root", "station/issuance/targets/attestation.py",
      "root = next((r for r in roots if _issued_by(intermediate, r)), None)", "root = (roots or [intermediate])[0]",
      ("tests/unit/test_attestation.py",)),
    M("AAL3 onto a PIV token only with a verified attestation", "station/issuance/targets/piv.py",
      "return self.vendor and bool(self.attestation_roots)", "return True", (PIV_CLI,)),
    M("a token holding a credential is replaced only when the registrar confirms", "station/issuance/engine.py",
      "        if not replace:\n            what =", "        if False:\n            what =", (PIV_CLI,)),
    M("the replaced credential is revoked when the new key is made", "station/issuance/engine.py",
      "if req.replaces and revocation.supersede(", "if False and revocation.supersede(", (PIV_CLI,)),
    M("a reused token with a blocked PIN gets no key", "station/issuance/targets/piv.py",
      "if session.get_pin_status().blocked:", "if False:", (PIV_TARGET,)),
    # --- the phone channel (docs/phone.md)
    M("an enrollment secret works once", "station/enrollment/binding.py",
      "        if spent:\n            raise BindingRefused(Refusal.SPENT", "        if False:\n            raise BindingRefused(Refusal.SPENT",
      (BINDING_TESTS,)),
    M("an enrollment secret expires", "station/enrollment/binding.py",
      "if time.time() >= enrollment.expires:", "if False:", (BINDING_TESTS,)),
    M("an enrollment needs the right secret and user", "station/enrollment/binding.py",
      "if not (hmac.compare_digest(_digest(otp), digest) & hmac.compare_digest(user.encode(), enrollment.user.encode())):",
      "if not hmac.compare_digest(user.encode(), enrollment.user.encode()):", (BINDING_TESTS,)),
    M("a phone's request proves possession of its key", "station/enrollment/service.py",
      "        if not csr.is_signature_valid:", "        if False:", (PHONE_ABUSE,)),
    M("a phone's key is of a type the station certifies", "station/enrollment/service.py",
      "        if kind is None:\n            return _text(400", "        if False:\n            return _text(400", (PHONE_ABUSE,)),
    M("AAL3 onto a phone only with a verified attestation", "station/enrollment/service.py",
      "        elif enrollment.aal == \"AAL3\":", "        elif False:", (PHONE_ISSUE,)),
    M("activate and selftest only with the credential this enrollment issued", "station/enrollment/service.py",
      "if presented is None or enrollment.certificate is None or presented != enrollment.certificate:",
      "if presented is None:", (PHONE_SERVICE,)),
    M("the phone client trusts only the pinned certificate", "station/phone/client.py",
      "if hashlib.sha256(presented or b\"\").hexdigest() != self.payload.fp:", "if False:", (PHONE_ISSUE,)),
    M("a phone's self-test checks revocation", "station/enrollment/service.py",
      'result.checks["not_revoked"] = not await', 'result.checks["not_revoked"] = True or await', (PHONE_SERVICE,)),
)


def _copy_tree(workdir: Path) -> Path:
    """The working tree as it is, beside a link to ../shared (the tests read it there)."""
    copy = workdir / REPO.name
    shutil.copytree(REPO, copy, ignore=SKIP, symlinks=True)
    shared = REPO.parent / "shared"
    if shared.exists():
        (workdir / "shared").symlink_to(shared)
    return copy


def _pytest(copy: Path, tests: tuple[str, ...]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(copy), "QT_QPA_PLATFORM": "offscreen", "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
    return subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True)


def run(mutants: tuple[Mutant, ...]) -> int:
    failed = 0
    with tempfile.TemporaryDirectory(prefix="station-mutants-") as tmp:
        copy = _copy_tree(Path(tmp))
        tests = tuple(dict.fromkeys(t for m in mutants for t in m.tests))
        baseline = _pytest(copy, tests)
        if baseline.returncode != 0:
            print(baseline.stdout[-3000:], baseline.stderr[-2000:], sep="\n")
            print("mutants: the tests fail without any mutant; fix them first", file=sys.stderr)
            return 2
        for mutant in mutants:
            target = copy / mutant.path
            original = target.read_text(encoding="utf-8")
            if original.count(mutant.before) != 1:
                print(f"stale    {mutant.rule}  ({mutant.path}: the text to mutate is not there once)")
                failed += 1
                continue
            started = time.monotonic()
            target.write_text(original.replace(mutant.before, mutant.after), encoding="utf-8")
            try:
                result = _pytest(copy, mutant.tests)
            finally:
                target.write_text(original, encoding="utf-8")
            took = f"{time.monotonic() - started:.0f} s"
            if result.returncode == 1:
                print(f"caught   {mutant.rule}  ({took})")
            elif result.returncode == 0:
                print(f"survived {mutant.rule}  ({mutant.path}; {' '.join(mutant.tests)} passed with it gone)")
                failed += 1
            else:
                print(f"broken   {mutant.rule}  (pytest exit {result.returncode}: the mutant does not run; fix the list)")
                print(result.stdout[-1500:], result.stderr[-1500:], sep="\n")
                failed += 1
            sys.stdout.flush()
    print(f"{len(mutants) - failed} caught, {failed} not caught")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mutants", description=__doc__.splitlines()[0])
    parser.add_argument("rules", nargs="*", help="run only the rules whose name contains one of these words")
    parser.add_argument("--list", action="store_true", help="list the rules and their tests, run nothing")
    args = parser.parse_args(argv)
    chosen = tuple(m for m in MUTANTS if not args.rules or any(w.lower() in m.rule.lower() for w in args.rules))
    if args.list:
        for m in chosen:
            print(f"{m.rule}\n    {m.path}\n    {' '.join(m.tests)}")
        return 0
    if not chosen:
        print("mutants: no rule matches", file=sys.stderr)
        return 2
    return run(chosen)


if __name__ == "__main__":
    sys.exit(main())
