"""Typed progress of an issuance: which step, which sub-step, how far, in plain words.

Events are emitted while the work runs (not only after a step ends), through
``Interaction.progress(event)``; a screen shows ``message`` and, when ``fraction`` is given,
a determinate bar. ``state`` is set when a step's transition has been committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Step(str, Enum):
    """The seven steps of SP 800-157 §3.2 as the station carries them out."""

    REQUEST = "request"
    APPROVAL = "approval"
    PKI_AUTH = "pki-auth"
    KEY_GENERATION = "key-generation"  # key on the device, proof of possession, certificate
    DELIVERY = "delivery"
    ACTIVATION = "activation"
    SELF_TEST = "self-test"

    @property
    def title(self) -> str:
        return _TITLES[self]


_TITLES = {
    Step.REQUEST: "Request",
    Step.APPROVAL: "Approval",
    Step.PKI_AUTH: "PIV card authentication",
    Step.KEY_GENERATION: "Key and certificate",
    Step.DELIVERY: "Delivery",
    Step.ACTIVATION: "Activation",
    Step.SELF_TEST: "Functional test",
}


@dataclass(frozen=True)
class Progress:
    step: Step
    message: str  # plain words for the person at the station
    substep: str = ""  # e.g. "checking revocation", "generating key on the token"
    fraction: float | None = None  # 0.0-1.0 within the step, when known
    state: str | None = None  # the request's state once this step's transition is committed
    request_id: int | None = None

    def __str__(self) -> str:
        where = f"{self.step.value}/{self.substep}" if self.substep else self.step.value
        return f"[{where}] {self.message}"
