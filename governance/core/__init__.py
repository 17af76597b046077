"""Domain-free plumbing: the only part of governance that cmdb and releases may import."""
