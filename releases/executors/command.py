"""The command executor: runs a configured program (kubectl, helm, a script) for each wave, without a shell.

The command is an argument list; placeholders in it are filled in as whole values, and an argument that is exactly
`{targets}` becomes one argument per target, so no target can smuggle in a second command. The program sees what it
acts on in its environment (CB_DEPLOYMENT, CB_ARTIFACT_DIGEST, CB_PREVIOUS_DIGEST, CB_ENVIRONMENT, CB_WAVE,
CB_TARGETS, CB_IDEMPOTENCY_KEY) and nothing of the worker's own (no database URL, no keys): only PATH, HOME, LANG
and TZ are passed on. Its output (stdout and stderr together) is kept up to a bound, and it is killed, with the
processes it started, when its time is up.
"""

import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass

from releases.executors.base import StepContext, StepResult, not_an_object, unknown_settings
from releases.models import LONGEST_STEP_SECONDS, RolloutStep

PLACEHOLDER = re.compile(r"\{(\w+)\}")
PLACEHOLDERS = ("deployment", "digest", "previous_digest", "environment", "wave", "targets", "key")
PASSED_ON = ("PATH", "HOME", "LANG", "TZ")
DEFAULT_TIMEOUT = 600
SETTINGS = ("forward", "backward", "check", "timeout_seconds")


@dataclass(frozen=True)
class CommandRun:
    """How a program ended: its exit status (None when killed at its timeout), its output, how long it took."""

    returncode: int | None
    output: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _bounded_reader(stream, limit: int, kept: bytearray, dropped: list[int]) -> None:
    """Read to the end (so the program never blocks on a full pipe), keeping the first `limit` bytes."""
    while chunk := stream.read(8192):
        room = limit - len(kept)
        kept.extend(chunk[:max(room, 0)])
        dropped[0] += max(len(chunk) - max(room, 0), 0)


def run_command(argv: list[str], *, env: dict[str, str], timeout: float,
                limit: int = RolloutStep.OUTPUT_LIMIT) -> CommandRun:
    """Run `argv` (no shell) with `env` added to the few variables passed on; kill its process group at
    `timeout` seconds. The output is cut at `limit` bytes, with a line saying how much was left out."""
    environment = {name: os.environ[name] for name in PASSED_ON if name in os.environ} | env
    started = time.monotonic()
    try:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, env=environment, start_new_session=True)
    except OSError as exc:
        return CommandRun(returncode=None, output=f"could not start {argv[0]}: {exc}", seconds=0.0)
    kept, dropped = bytearray(), [0]
    reader = threading.Thread(target=_bounded_reader, args=(process.stdout, limit, kept, dropped), daemon=True)
    reader.start()
    timed_out = False
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(process.pid, signal.SIGKILL)  # its own session: the children it started go too
        process.wait()
    reader.join(timeout=5)
    output = kept.decode("utf-8", errors="replace")
    if dropped[0]:
        output += f"\n[output cut at {limit} bytes: {dropped[0]} more left out]"
    if timed_out:
        output += f"\n[killed after {timeout:g} seconds]"
    return CommandRun(returncode=None if timed_out else process.returncode, output=output,
                      seconds=time.monotonic() - started)


def expand(argv: list[str], values: dict[str, str], targets: tuple[str, ...]) -> list[str]:
    """The argument list with its placeholders filled in; `{targets}` alone is one argument per target."""
    expanded: list[str] = []
    for argument in argv:
        if argument == "{targets}":
            expanded.extend(targets)
        else:
            expanded.append(PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), argument))
    return expanded


def step_environment(step: StepContext) -> dict[str, str]:
    return {
        "CB_DEPLOYMENT": step.deployment, "CB_ARTIFACT_DIGEST": step.artifact_digest,
        "CB_PREVIOUS_DIGEST": step.previous_digest, "CB_ENVIRONMENT": step.environment, "CB_WAVE": step.wave,
        "CB_TARGETS": ",".join(step.targets), "CB_IDEMPOTENCY_KEY": step.idempotency_key,
    }


def _argument_list_errors(name: str, value, *, required: bool) -> list[str]:
    if value is None or value == []:
        return [f"{name} is required: the command as a list of arguments."] if required else []
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value) or not value[0].strip():
        return [f"{name} must be a list of arguments (strings), the program first."]
    unknown = sorted({m for a in value for m in PLACEHOLDER.findall(a)} - set(PLACEHOLDERS))
    if unknown:
        return [f"{name} names unknown placeholders: {', '.join(unknown)} (known: {', '.join(PLACEHOLDERS)})."]
    return []


def command_settings_errors(settings) -> list[str]:
    if not isinstance(settings, dict):
        return not_an_object(SETTINGS)
    errors = unknown_settings(settings, SETTINGS)
    errors += _argument_list_errors("forward", settings.get("forward"), required=True)
    errors += _argument_list_errors("backward", settings.get("backward"), required=True)
    errors += _argument_list_errors("check", settings.get("check"), required=False)
    timeout = settings.get("timeout_seconds", DEFAULT_TIMEOUT)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= LONGEST_STEP_SECONDS:
        errors.append(f"timeout_seconds must be a whole number from 1 to {LONGEST_STEP_SECONDS}.")
    return errors


@dataclass(frozen=True)
class CommandExecutor:
    """Runs `forward` to deploy a wave, `backward` to roll it back, and `check` (exit 0: it happened, 1: it did
    not, anything else: cannot tell) to ask whether an interrupted rollout already happened."""

    forward_command: list[str]
    backward_command: list[str]
    check_command: list[str]
    timeout_seconds: int

    @classmethod
    def from_settings(cls, settings: dict) -> "CommandExecutor":
        return cls(forward_command=settings["forward"], backward_command=settings["backward"],
                   check_command=settings.get("check") or [],
                   timeout_seconds=settings.get("timeout_seconds", DEFAULT_TIMEOUT))

    def _run(self, argv: list[str], step: StepContext) -> CommandRun:
        values = {"deployment": step.deployment, "digest": step.artifact_digest,
                  "previous_digest": step.previous_digest, "environment": step.environment, "wave": step.wave,
                  "targets": ",".join(step.targets), "key": step.idempotency_key}
        return run_command(expand(argv, values, step.targets), env=step_environment(step),
                           timeout=self.timeout_seconds)

    def forward(self, step: StepContext) -> StepResult:
        run = self._run(self.forward_command, step)
        return StepResult(ok=run.ok, output=run.output)

    def backward(self, step: StepContext) -> StepResult:
        run = self._run(self.backward_command, step)
        return StepResult(ok=run.ok, output=run.output)

    def check(self, step: StepContext) -> bool | None:
        if not self.check_command:
            return None
        code = self._run(self.check_command, step).returncode
        return True if code == 0 else False if code == 1 else None
