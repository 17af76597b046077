"""The release calendar: freezes, maintenance windows, lockdowns and scheduling."""
