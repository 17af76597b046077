"""Change requests: lifecycle, risk, approval policies, approvals and CAB meetings."""
