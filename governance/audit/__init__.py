"""The audit ledger: capture (database triggers and explicit events), sealing, checkpoints, verification."""
