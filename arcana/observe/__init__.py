"""Observability: Prometheus metrics, request logs and traces for every process.

The metrics themselves live in ``arcana.core.metrics`` (the apps count
through it); this package exposes them (the ``/metrics`` view, a gRPC
process's metrics port), measures REST requests (``middleware``) and wires
the database's statements in (``apps``).
"""
