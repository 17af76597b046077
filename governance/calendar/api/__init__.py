"""The release calendar API: freezes, maintenance windows, lockdowns, slots and calendar feeds."""
