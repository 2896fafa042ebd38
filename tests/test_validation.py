"""The one module of argument checks."""

import math

import pytest

import scoresde
from scoresde._validation import (
    check_callable,
    check_choice,
    check_count,
    check_int,
    check_positive,
    check_sde,
    from_name,
    is_int,
    is_real,
)
from scoresde.solvers import EulerMaruyama, Solver


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


def test_type_checks_and_the_name_or_object_factory():
    sde = scoresde.VPSDE()
    assert check_sde(sde) is sde and check_callable("score_fn", abs) is abs
    with pytest.raises(TypeError, match="sde must be a scoresde.SDE, got str"):
        check_sde("vp")
    with pytest.raises(TypeError, match="score_fn must be callable, got int"):
        check_callable("score_fn", 3)
    table = {"em": EulerMaruyama}
    assert isinstance(from_name("solver", "em", table, Solver), EulerMaruyama)
    solver = EulerMaruyama()
    assert from_name("solver", solver, table, Solver) is solver
    with pytest.raises(TypeError, match=r"solver options \['steps'\] are only accepted with a solver name"):
        from_name("solver", solver, table, Solver, steps=3)
    with pytest.raises(ValueError, match=r"solver must be one of \['em'\] or a Solver object, got 'pc'"):
        from_name("solver", "pc", table, Solver)
