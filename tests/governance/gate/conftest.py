from tests.governance.gate.gate_world import world  # noqa: F401 (the fixture every gate test asks about)
from tests.governance.gate.github_world import github  # noqa: F401 (the stand-in for GitHub's API)
