"""``python -m scoresde.likelihood``: a thin launcher for :func:`scoresde.cli.likelihood.main`."""

from scoresde.cli.likelihood import main

if __name__ == "__main__":
    main()
