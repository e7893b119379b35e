"""The shared kernel: time, money, durations, zones, stages, who acts, refusals."""
