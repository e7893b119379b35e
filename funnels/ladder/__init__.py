"""The task ladder: platform events, goals, progress and rewards."""
