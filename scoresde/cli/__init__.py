"""The command line: entry points, the sampling CLI's tasks, sample snapshots and figures.

The only modules of scoresde that import hydra or matplotlib; nothing outside this package imports it
(tests/test_layers.py).
"""
