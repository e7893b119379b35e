"""The funnelbot domain, cut by slice: ``kernel`` (time, money, stages, records, the
messenger, the unit of work), ``scripts``, ``cohorts``, ``warmup``, ``ladder``, ``people``
and ``ops``, each with its use cases and, in its ``ports`` module, the part of storage it
uses.

Pure by rule: this package imports only the standard library, pydantic and PyYAML, and
reaches the world through Protocols (``funnels.kernel.messaging``, the slices' ports).
"""
