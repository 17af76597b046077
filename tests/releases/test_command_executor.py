"""The command executor: no shell, placeholders filled in as whole values, the step in the environment, a bounded
output and a deadline that kills the command with what it started. No database."""

import json
import sys
import time

import pytest

from releases.executors import StepContext, settings_errors
from releases.executors.command import CommandExecutor, run_command

PY = sys.executable
STEP = StepContext(deployment="DEP0000042", environment="staging", artifact_digest="sha256:" + "a" * 64,
                   previous_digest="sha256:" + "b" * 64, wave="eu-west", targets=("web-1", "web-2"),
                   idempotency_key="DEP0000042-004-rollout")


def executor(forward, *, backward=None, check=None, timeout=30) -> CommandExecutor:
    settings = {"forward": forward, "backward": backward or [PY, "-c", "pass"], "timeout_seconds": timeout}
    if check:
        settings["check"] = check
    assert settings_errors("command", settings) == []
    return CommandExecutor.from_settings(settings)


def test_the_command_sees_the_step_in_its_environment_and_nothing_of_the_workers(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://secret@db/changeboard")
    dump = "import json, os; print(json.dumps(dict(os.environ)))"
    result = executor([PY, "-c", dump]).forward(STEP)
    assert result.ok
    env = json.loads(result.output)
    assert {name: value for name, value in env.items() if name.startswith("CB_")} == {
        "CB_DEPLOYMENT": "DEP0000042", "CB_ARTIFACT_DIGEST": STEP.artifact_digest,
        "CB_PREVIOUS_DIGEST": STEP.previous_digest, "CB_ENVIRONMENT": "staging", "CB_WAVE": "eu-west",
        "CB_TARGETS": "web-1,web-2", "CB_IDEMPOTENCY_KEY": "DEP0000042-004-rollout"}
    assert "DATABASE_URL" not in env
    assert set(env) - {"PATH", "HOME", "LANG", "TZ", "LC_CTYPE"} <= {name for name in env if name.startswith("CB_")}


def test_placeholders_are_filled_in_and_targets_alone_become_one_argument_each():
    show = "import json, sys; print(json.dumps(sys.argv[1:]))"
    result = executor([PY, "-c", show, "--image=app@{digest}", "{targets}", "{wave}/{key}"]).forward(STEP)
    assert json.loads(result.output) == [f"--image=app@{STEP.artifact_digest}", "web-1", "web-2",
                                         "eu-west/DEP0000042-004-rollout"]


def test_a_target_cannot_inject_a_command(tmp_path):
    planted = tmp_path / "planted"
    hostile = (f"web-1; touch {planted}", f"$(touch {planted})", f"`touch {planted}`", f"a && touch {planted}")
    step = StepContext(**{**vars(STEP), "targets": hostile})
    show = "import json, sys; print(json.dumps(sys.argv[1:]))"
    result = executor([PY, "-c", show, "{targets}", "--all={targets}"]).forward(step)
    assert result.ok
    assert json.loads(result.output) == [*hostile, "--all=" + ",".join(hostile)]
    assert not planted.exists()


def test_backward_runs_the_backward_command_with_the_previous_digest():
    result = executor([PY, "-c", "raise SystemExit(3)"],
                      backward=[PY, "-c", "import sys; print('back to', sys.argv[1])", "{previous_digest}"]
                      ).backward(STEP)
    assert result.ok and result.output.strip() == f"back to {STEP.previous_digest}"


def test_a_failing_command_fails_the_step_with_its_output():
    result = executor([PY, "-c", "import sys; print('no rollout today'); sys.exit(2)"]).forward(STEP)
    assert not result.ok
    assert "no rollout today" in result.output


def test_the_output_is_cut_at_its_bound_and_says_how_much_was_left_out():
    run = run_command([PY, "-c", "import sys; sys.stdout.write('x' * 100_000)"], env={}, timeout=30, limit=1000)
    assert run.ok
    assert run.output.startswith("x" * 1000) and not run.output.startswith("x" * 1001)
    assert run.output.endswith("[output cut at 1000 bytes: 99000 more left out]")


def test_the_default_bound_is_64_kib():
    result = executor([PY, "-c", "import sys; sys.stdout.write('y' * 200_000)"]).forward(STEP)
    kept, note = result.output.split("\n")
    assert kept == "y" * 64 * 1024
    assert note == "[output cut at 65536 bytes: 134464 more left out]"


def test_a_command_past_its_timeout_is_killed_with_the_processes_it_started(tmp_path):
    survivor = tmp_path / "survivor"
    child = f"import time; time.sleep(3); open({str(survivor)!r}, 'w').write('alive')"
    script = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}]); print('started'); " \
             "sys.stdout.flush(); time.sleep(60)"
    began = time.monotonic()
    result = executor([PY, "-c", script], timeout=1).forward(STEP)
    assert time.monotonic() - began < 10
    assert not result.ok
    assert "started" in result.output and "[killed after 1 seconds]" in result.output
    time.sleep(3.5)
    assert not survivor.exists()


def test_a_program_that_does_not_exist_fails_the_step_and_says_so():
    result = executor(["/nonexistent/kubectl", "rollout"]).forward(STEP)
    assert not result.ok and "could not start /nonexistent/kubectl" in result.output


@pytest.mark.parametrize(("code", "answer"), [(0, True), (1, False), (7, None)])
def test_check_says_whether_an_interrupted_rollout_happened(code, answer):
    assert executor([PY, "-c", "pass"], check=[PY, "-c", f"raise SystemExit({code})"]).check(STEP) is answer


def test_without_a_check_command_the_executor_cannot_tell():
    assert executor([PY, "-c", "pass"]).check(STEP) is None


@pytest.mark.parametrize(("settings", "error"), [
    ({"backward": ["rollback"]}, "forward is required"),
    ({"forward": "deploy.sh {targets}", "backward": ["b"]}, "forward must be a list of arguments"),
    ({"forward": ["deploy", "{target}"], "backward": ["b"]}, "forward names unknown placeholders: target"),
    ({"forward": ["a"], "backward": ["b"], "timeout_seconds": 0}, "timeout_seconds must be a whole number"),
    ({"forward": ["a"], "backward": ["b"], "timeout_seconds": 7200}, "timeout_seconds must be a whole number"),
    ({"forward": ["a"], "backward": ["b"], "shell": True}, "Unknown settings: shell"),
    ({"forward": [""], "backward": ["b"]}, "forward must be a list of arguments"),
])
def test_bad_settings_are_named(settings, error):
    errors = settings_errors("command", settings)
    assert any(error in message for message in errors), errors


def test_an_unknown_executor_is_named():
    assert settings_errors("teleport", {}) == ["No executor is called 'teleport'."]
