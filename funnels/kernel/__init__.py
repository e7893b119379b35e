"""The shared kernel: time, money, durations, zones, stages and roles, who acts,
refusals, the records the slices share, the messenger port and the unit of work."""
