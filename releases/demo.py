"""The demo's builds: how far each got along the chain (dev, test, staging, prod), and what its scans found."""

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class DemoBuild:
    service: str
    version: str
    passed: list[str]  # environments passed, in chain order
    signed: bool = True
    # (kind, tool, verdict, critical, high, medium, low)
    scans: list[tuple[str, str, str, int, int, int, int]] = field(default_factory=list)

    @property
    def digest(self) -> str:
        # Stable across runs, so a second run finds the same builds.
        return "sha256:" + hashlib.sha256(f"demo:{self.service}:{self.version}".encode()).hexdigest()

    @property
    def source_commit(self) -> str:
        return hashlib.sha1(f"demo:{self.service}:{self.version}".encode(), usedforsecurity=False).hexdigest()


CLEAN = [("sast", "semgrep", "pass", 0, 0, 2, 7), ("dependency", "trivy", "pass", 0, 0, 3, 11)]
DEMO_BUILDS = [
    DemoBuild("payments-api", "4.1.0", ["dev", "test", "staging", "prod"], scans=CLEAN),
    DemoBuild("payments-api", "4.2.0", ["dev", "test"], scans=[*CLEAN, ("dast", "zap", "pass", 0, 0, 1, 4)]),
    DemoBuild("payments-api", "4.2.1", ["dev"], scans=[("sast", "semgrep", "pass", 0, 0, 1, 6),
                                                       ("dependency", "trivy", "fail", 1, 2, 4, 9)]),
    DemoBuild("notifications", "3.1.0", ["dev", "test", "staging"], scans=CLEAN),
    DemoBuild("notifications", "3.2.0", ["dev", "test"], scans=CLEAN),
    DemoBuild("fraud-scoring", "7.0.0", ["dev"], signed=False, scans=[("sast", "semgrep", "warn", 0, 1, 5, 2)]),
]


@dataclass(frozen=True)
class GateChange:
    """An approved change the gate allows as soon as the demo starts: the next step of one demo build."""

    build: DemoBuild
    environment: str
    implementation: str = "The pipeline deploys the pinned build."

    @property
    def title(self) -> str:
        return f"Deploy {self.build.service} {self.build.version} to {self.environment}"


GATE_CHANGE = GateChange(DEMO_BUILDS[1], "staging")
# The change a release manager deploys with Changeboard's own workers, over the local fleet `make run` starts
# (releases/demo_fleet.py), replacing the build running there.
ROLLOUT_CHANGE = GateChange(DEMO_BUILDS[4], "staging", "Changeboard's workers roll it out in three waves: canary, "
                                                       "eu-west, then us-east once a release manager approves it.")
ROLLOUT_LIVE = DEMO_BUILDS[3]
