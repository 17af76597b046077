"""What every executor offers the deployment engine, and what it is handed: one small interface, no approval.

An executor deploys a build to a wave's targets, rolls them back to the build that ran before, and, for a step that
is unsafe to repeat and was interrupted, tells whether it already happened. It knows nothing of changes or gates:
governance decides whether to run, the engine decides what runs next.
"""

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class StepContext:
    """What one step acts on: the deployment by number, the build and the one before it, where, and its key."""

    deployment: str
    environment: str
    artifact_digest: str
    previous_digest: str
    wave: str
    targets: tuple[str, ...]
    idempotency_key: str


@dataclass(frozen=True)
class StepResult:
    """How a step ended: whether it did what it was asked, and what it said (already cut to size)."""

    ok: bool
    output: str


class Executor(Protocol):
    def forward(self, step: StepContext) -> StepResult:
        """Deploy `step.artifact_digest` to the wave's targets; the idempotency key names this very step."""
        ...

    def backward(self, step: StepContext) -> StepResult:
        """Put the wave's targets back on `step.previous_digest`."""
        ...

    def check(self, step: StepContext) -> bool | None:
        """Whether an interrupted step unsafe to repeat already happened: True, False, or None when it cannot tell.
        For a rollback the engine asks with the digests swapped: `step.artifact_digest` is the build it puts back."""
        ...


def unknown_settings(settings: dict, known: tuple[str, ...]) -> list[str]:
    """The keys of an executor's settings object that its kind does not read, as one error (none when all are)."""
    unknown = sorted(set(settings) - set(known))
    return [f"Unknown settings: {', '.join(unknown)}."] if unknown else []


def not_an_object(known: tuple[str, ...]) -> list[str]:
    return [f"The settings are an object: {', '.join(known)}."]

