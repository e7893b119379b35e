"""Funnel scripts: the model, reading YAML with limits, checks, the planner, the library."""
