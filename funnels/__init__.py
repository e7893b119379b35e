"""The funnelbot domain: scripts, planning, envelopes, replies, tasks, rewards, stages.

Pure by rule: this package imports only the standard library, pydantic and PyYAML,
and reaches the world through the Protocols in :mod:`funnels.ports`.
"""
