"""Command-line entry points: the only modules of scoresde that import hydra."""
