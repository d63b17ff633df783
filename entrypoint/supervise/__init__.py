"""Supervised mode (docs/adr/0011): the engine as a child, its /metrics read, idle and run-time stops, cost.

`supervisor` is the edge (a child process, signals, HTTP); `engine_metrics` and `prices` are pure.
"""
