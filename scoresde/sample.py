"""``python -m scoresde.sample``: a thin launcher for :func:`scoresde.cli.sample.main`.

Never ``import scoresde.sample``: the name also denotes the sampling function exported by the package, which a
submodule import would shadow. Use the console script ``scoresde-sample`` or ``python -m scoresde.sample``.
"""

from scoresde.cli.sample import main

if __name__ == "__main__":
    main()
