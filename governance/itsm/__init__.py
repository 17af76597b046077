"""ITSM sync: changes mirrored out to the customers' ITSM tools through a transactional outbox, incidents brought in
by signed webhook and by pull, and each incident's likely causes among recent deployments."""
