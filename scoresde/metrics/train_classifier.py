"""Thin launcher: ``python -m scoresde.metrics.train_classifier data=digits`` (see scoresde.cli.train_classifier)."""

from scoresde.cli.train_classifier import main

if __name__ == "__main__":
    main()
