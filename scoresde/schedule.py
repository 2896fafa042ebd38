"""``python -m scoresde.schedule``: a thin launcher for :func:`scoresde.cli.schedule.main`.

Use the console script ``scoresde-schedule`` or ``python -m scoresde.schedule``; the function is
:func:`scoresde.optimize_schedule`.
"""

from scoresde.cli.schedule import main

if __name__ == "__main__":
    main()
