"""Deployments Changeboard runs: starting them under the gate's rules, the one-step task, pause, resume, abort."""
