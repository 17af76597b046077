"""Executors: how a wave of a deployment is carried out, chosen per plan."""

from releases.executors.base import Executor, StepContext, StepResult
from releases.executors.command import CommandExecutor, command_settings_errors
from releases.executors.kubernetes import KubernetesExecutor, kubernetes_settings_errors
from releases.executors.webhook import WebhookExecutor, webhook_settings_errors
from releases.models import DeploymentPlan, ExecutorKind

__all__ = ["Executor", "StepContext", "StepResult", "executor_for", "settings_errors"]


def settings_errors(kind: str, settings: dict) -> list[str]:
    """What is wrong with an executor's settings, in words; empty when they will do."""
    if kind == ExecutorKind.COMMAND:
        return command_settings_errors(settings)
    if kind == ExecutorKind.WEBHOOK:
        return webhook_settings_errors(settings)
    if kind == ExecutorKind.KUBERNETES:
        return kubernetes_settings_errors(settings)
    return [f"No executor is called {kind!r}."]


def executor_for(plan: DeploymentPlan) -> Executor:
    if plan.executor == ExecutorKind.COMMAND:
        return CommandExecutor.from_settings(plan.executor_settings)
    if plan.executor == ExecutorKind.WEBHOOK:
        return WebhookExecutor.from_settings(plan.executor_settings)
    if plan.executor == ExecutorKind.KUBERNETES:
        return KubernetesExecutor.from_settings(plan.executor_settings)
    raise ValueError(f"No executor is called {plan.executor!r}.")
