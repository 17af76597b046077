"""The ITGC change-management controls, each tested over a period's population: passed when no exception of its
kinds was found, with the exceptions that failed it and the criteria written beside it."""

from dataclasses import dataclass

from governance.evidence.exceptions import EvidenceException, period_exceptions
from governance.evidence.period import Period
from governance.evidence.population import production_deployments
from governance.models import ChangeType


@dataclass(frozen=True)
class ControlResult:
    control: str
    name: str
    criteria: str
    passed: bool
    tested: int
    exception_keys: tuple[str, ...]


@dataclass(frozen=True)
class Control:
    control: str
    name: str
    criteria: str
    kinds: tuple[str, ...]


CONTROLS = (
    Control("CM-1", "Authorization before implementation",
            "Every production deployment ran under a change approved before it started, inside the change's "
            "window, with a build the change approved and (when a pipeline reported it) a gate check that allowed "
            "it.",
            ("no_approved_change", "approval_after_start", "outside_window", "digest_not_approved",
             "no_allowing_check")),
    Control("CM-2", "Segregation of duties",
            "No approval counted was given by the change's requester, its implementer or whoever carried the "
            "deployment out, and each approver held the role it counted for at that moment, as the ledger shows.",
            ("self_approval", "approval_role_not_held")),
    Control("CM-3", "Testing before production",
            "Every change that reached production holds test evidence.", ("no_test_evidence",)),
    Control("CM-4", "Emergency changes",
            "Every emergency change that reached production had its retrospective review by the due time, and every "
            "deployment through a hard freeze by override is listed for review.",
            ("emergency_review_missing", "emergency_review_late", "freeze_override")),
    Control("CM-5", "Restricted access to deploy",
            "Production deployments were made only by pipelines' service accounts under an allowing gate check, or "
            "by Changeboard itself running an approved change.",
            ("deployer_not_service_account", "no_allowing_check")),
)


def control_tests(period: Period, exceptions: list[EvidenceException] | None = None) -> list[ControlResult]:
    """Each control tested over the period (`exceptions` when the caller already found them)."""
    found = period_exceptions(period) if exceptions is None else exceptions
    deployments = production_deployments(period).order_by()
    tested = {"deployments": deployments.count(),
              "changes": deployments.exclude(change_number="").values("change_number").distinct().count(),
              "emergency": deployments.filter(change_number__in=_emergency_numbers()).count()}
    population = {"CM-1": tested["deployments"], "CM-2": tested["changes"], "CM-3": tested["changes"],
                  "CM-4": tested["emergency"], "CM-5": tested["deployments"]}
    results = []
    for control in CONTROLS:
        keys = tuple(e.key for e in found if e.kind in control.kinds)
        results.append(ControlResult(control=control.control, name=control.name, criteria=control.criteria,
                                     passed=not keys, tested=population[control.control], exception_keys=keys))
    return results


def _emergency_numbers():
    from governance.models import ChangeRequest

    return ChangeRequest.objects.filter(change_type=ChangeType.EMERGENCY).values("number")
