"""The interaction bridge (station/issuance/bridge.py) and its Qt adapter (station/ui/bridge.py):
a worker thread asks, another thread answers, declines or cancels; nothing secret stays behind."""

from __future__ import annotations

import gc
import queue
import threading
import time

import pytest

from station.cancel import Cancelled
from station.issuance.bridge import InteractionBridge, Prompt, PromptDeclined, PromptKind, PromptTimedOut
from station.issuance.interaction import ApprovalDecision
from station.issuance.progress import Progress, Step


class Worker(threading.Thread):
    """Runs ``fn`` on its own thread, keeping its result or error (like the device worker)."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.result, self.error, self.ended_at = fn, None, None, None

    def run(self):
        try:
            self.result = self.fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc
        self.ended_at = time.monotonic()


def asking(**kw):
    prompts: queue.Queue[Prompt] = queue.Queue()
    withdrawn: list[Prompt] = []
    return InteractionBridge(prompts.put, on_withdrawn=withdrawn.append, **kw), prompts, withdrawn


def test_a_worker_asks_and_another_thread_answers():
    bridge, prompts, _ = asking(cancel=threading.Event())
    worker = Worker(lambda: bridge.request_pin(pin_kind="application", tries_left=4))
    worker.start()
    prompt = prompts.get(timeout=5)
    assert prompt.kind is PromptKind.PIN and prompt.secret and not prompt.done()
    assert (prompt.pin_kind, prompt.tries_left) == ("application", 4) and "4 tries left" in prompt.question
    time.sleep(0.05)
    assert worker.is_alive()  # it waits for the answer
    answerer = threading.Thread(target=lambda: prompt.answer("".join(["24", "68", "10"])))
    answerer.start()
    answerer.join(5)
    worker.join(5)
    assert worker.error is None and worker.result == "246810"
    assert prompt.status == "taken" and prompt.answer("again") is False


def test_every_question_carries_its_fields_and_gets_its_answer():
    bridge, prompts, _ = asking()
    cases = [
        (lambda: bridge.request_new_pin(), ("k9Pz4mQ1", "k9Pz4mQ1"), {"kind": PromptKind.NEW_PIN}),
        (lambda: bridge.confirm_photo(b"\xff\xd8jpeg", "CN=Golden"), True,
         {"kind": PromptKind.PHOTO, "facial_image": b"\xff\xd8jpeg", "subject": "CN=Golden"}),
        (lambda: bridge.operator_secret("sup", "approve request 7"), "supervisor passphrase",
         {"kind": PromptKind.OPERATOR_SECRET, "operator": "sup", "purpose": "approve request 7"}),
        (lambda: bridge.approve_request("request 7 for CN=Golden, AAL2"), ApprovalDecision(False, "not today"),
         {"kind": PromptKind.APPROVAL, "summary": "request 7 for CN=Golden, AAL2"}),
    ]
    for ask, answer, fields in cases:
        worker = Worker(ask)
        worker.start()
        prompt = prompts.get(timeout=5)
        assert {name: getattr(prompt, name) for name in fields} == fields
        assert prompt.secret is (prompt.kind in (PromptKind.NEW_PIN, PromptKind.OPERATOR_SECRET))
        assert "passphrase" not in repr(prompt)
        prompt.answer(answer)
        worker.join(5)
        assert worker.error is None and worker.result == answer


def test_a_wrongly_typed_answer_is_an_error_that_does_not_show_it():
    bridge, prompts, _ = asking()
    worker = Worker(lambda: bridge.request_new_pin())
    worker.start()
    prompts.get(timeout=5).answer("k9Pz4mQ1")  # one string, not the PIN typed twice
    worker.join(5)
    assert isinstance(worker.error, TypeError) and "k9Pz4mQ1" not in str(worker.error)


def test_a_declined_question_is_a_station_error_with_a_hint():
    bridge, prompts, withdrawn = asking(cancel=threading.Event())
    worker = Worker(lambda: bridge.operator_secret("reg", "open a request"))
    worker.start()
    prompt = prompts.get(timeout=5)
    assert prompt.decline("the registrar walked away") is True
    worker.join(5)
    assert isinstance(worker.error, PromptDeclined) and worker.error.code == "interaction.declined"
    assert "walked away" in str(worker.error) and worker.error.hint
    assert prompt.answer("too late") is False and withdrawn == []


def test_cancel_while_waiting_frees_the_worker_at_once_and_withdraws_the_prompt():
    cancel = threading.Event()
    bridge, prompts, withdrawn = asking(cancel=cancel)
    worker = Worker(lambda: bridge.request_pin(pin_kind="application", tries_left=5))
    worker.start()
    prompt = prompts.get(timeout=5)
    time.sleep(0.05)
    cancelled_at = time.monotonic()
    cancel.set()  # from another thread: the GUI's Cancel button, or SIGINT
    worker.join(5)
    assert isinstance(worker.error, Cancelled) and worker.error.code == "cancelled"
    assert worker.ended_at - cancelled_at < 0.1, worker.ended_at - cancelled_at
    assert withdrawn == [prompt] and prompt.withdrawn
    assert prompt.answer("246810") is False  # answering the abandoned prompt is harmless
    assert prompt._value is None and prompt.status == "withdrawn"
    with pytest.raises(Cancelled):  # a set token stops the next question before it is asked
        bridge.request_new_pin()
    assert prompts.empty()


def test_an_unanswered_prompt_times_out():
    bridge, prompts, withdrawn = asking(timeouts={PromptKind.PHOTO: 0.1})
    started = time.monotonic()
    with pytest.raises(PromptTimedOut) as info:
        bridge.confirm_photo(None, "CN=x")
    assert 0.1 <= time.monotonic() - started < 1.0 and info.value.code == "interaction.timeout"
    assert withdrawn == [prompts.get_nowait()]


def test_no_secret_stays_in_the_bridge_or_the_prompt_once_taken():
    bridge, prompts, _ = asking(cancel=threading.Event())
    secret = "".join(["s3cret-", "pass", "phrase-", str(time.monotonic_ns())])  # not interned: its referrers are ours
    worker = Worker(lambda: bridge.operator_secret("reg", "sign in"))
    worker.start()
    prompt = prompts.get(timeout=5)
    threading.Thread(target=prompt.answer, args=(secret,)).start()
    worker.join(5)
    assert worker.result == secret
    worker.result = None  # the engine's own copy: gone when the step is done
    for holder in (bridge, prompt):
        assert all(value is not secret and secret not in repr(value) for value in vars(holder).values())
    owners = [vars(bridge), vars(prompt), bridge, prompt, vars(worker)]
    referrers = gc.get_referrers(secret)
    assert not any(any(r is owner for owner in owners) for r in referrers)


def test_progress_events_arrive_in_order_without_waiting():
    seen: list[Progress] = []
    gate = threading.Event()
    bridge = InteractionBridge(lambda prompt: None, on_progress=seen.append)
    events = [Progress(Step.PKI_AUTH, f"sub-step {i}", "checking revocation", fraction=i / 10) for i in range(10)]
    worker = Worker(lambda: [bridge.progress(event) for event in events] and gate.set())
    started = time.monotonic()
    worker.start()
    worker.join(5)
    assert gate.is_set() and time.monotonic() - started < 1.0
    assert seen == events
    failing = InteractionBridge(lambda prompt: None, on_progress=lambda event: 1 / 0)
    failing.progress(events[0])  # a screen's fault does not stop the issuance


def test_qt_adapter_asks_on_the_gui_thread_and_the_answer_goes_back(qtbot):
    from station.ui.bridge import QtInteractionBridge

    adapter = QtInteractionBridge()
    gui = threading.current_thread()
    received: list[tuple[str, object, threading.Thread]] = []
    adapter.progressed.connect(lambda event: received.append(("progress", event, threading.current_thread())))
    adapter.prompted.connect(lambda prompt: received.append(("prompt", prompt, threading.current_thread())))

    def work():
        adapter.interaction.progress(Progress(Step.PKI_AUTH, "asking for the PIN", "PIN"))
        return adapter.interaction.request_pin(pin_kind="application", tries_left=3)

    worker = Worker(work)
    with qtbot.waitSignal(adapter.prompted, timeout=5000):
        worker.start()
    (kind_p, event, thread_p), (kind, prompt, thread) = received
    assert (kind_p, kind) == ("progress", "prompt") and thread_p is gui and thread is gui is not worker
    assert event.substep == "PIN" and prompt.kind is PromptKind.PIN and prompt.tries_left == 3
    assert worker.is_alive()
    assert adapter.answer(prompt, "246810") is True
    worker.join(5)
    assert worker.result == "246810" and prompt.status == "taken"


def test_qt_adapter_cancel_withdraws_the_prompt(qtbot):
    from station.ui.bridge import QtInteractionBridge

    adapter = QtInteractionBridge()
    prompts: list[Prompt] = []
    adapter.prompted.connect(prompts.append)
    worker = Worker(lambda: adapter.interaction.request_new_pin())
    with qtbot.waitSignal(adapter.prompted, timeout=5000):
        worker.start()
    with qtbot.waitSignal(adapter.withdrawn, timeout=5000) as withdrawn:
        adapter.cancel()
    worker.join(5)
    assert withdrawn.args == [prompts[0]] and isinstance(worker.error, Cancelled)
    assert adapter.answer(prompts[0], ("k9Pz4mQ1", "k9Pz4mQ1")) is False
