"""``python -m scoresde.train``: a thin launcher for :func:`scoresde.cli.train.main` (hydra lives in scoresde.cli)."""

from scoresde.cli.train import main

if __name__ == "__main__":
    main()
