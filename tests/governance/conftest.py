from tests.governance.gate_world import world  # noqa: F401 (a fixture shared by the gate tests)
