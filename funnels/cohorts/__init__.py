"""Cohorts: launching one, the scheduler tick, pausing and resuming, status."""
