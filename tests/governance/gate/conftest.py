from tests.governance.gate.gate_world import world  # noqa: F401 (the fixture every gate test asks about)
