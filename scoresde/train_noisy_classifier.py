"""``python -m scoresde.train_noisy_classifier``: a thin launcher for scoresde.cli.train_noisy_classifier.main."""

from scoresde.cli.train_noisy_classifier import main

if __name__ == "__main__":
    main()
