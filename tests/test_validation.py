"""The one module of argument checks."""

import math

import pytest

from scoresde._validation import check_choice, check_count, check_int, check_positive, is_int, is_real


def test_predicates_refuse_bools():
    assert is_int(3) and not is_int(True) and not is_int(3.0)
    assert is_real(3) and is_real(2.5) and not is_real(False) and not is_real("1")


def test_checks_return_the_value_and_name_the_argument():
    assert check_count("steps", 4) == 4
    assert check_int("levels", 2, 2) == 2
    assert check_positive("eps", 1) == 1.0 and isinstance(check_positive("eps", 1), float)
    assert check_choice("grid", "uniform", ("uniform", "karras")) == "uniform"
    with pytest.raises(ValueError, match=r"steps must be an integer >= 1, got True"):
        check_count("steps", True)
    with pytest.raises(ValueError, match=r"levels must be an integer >= 2, got 1"):
        check_int("levels", 1, 2)
    for bad in (0, -1.0, math.inf, math.nan, True, "1"):
        with pytest.raises(ValueError, match="eps must be a positive finite number"):
            check_positive("eps", bad)
    with pytest.raises(ValueError, match=r"grid must be one of \['karras', 'uniform'\], got 'x'"):
        check_choice("grid", "x", ("uniform", "karras"))
