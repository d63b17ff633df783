"""What the tests share and are not tests themselves: paths, generated models, a fake Hub, runners.

Imported as `tests.support.*` (pytest puts the repository root on sys.path: pyproject `pythonpath`), and by
the benchmarks run as `python -m bench.<name>` from the root.
"""
