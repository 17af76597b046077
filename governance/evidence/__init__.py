"""The auditor's workspace: a period's population of production deployments, its reconciliation, exceptions and
control tests, the access review, samples, the signed evidence bundle and its offline verifier."""
