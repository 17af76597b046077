"""Access: API tokens, issued, scoped, revoked and authenticated."""
