"""scoresde.colorize: the colour basis, the observed grey level, input checks, and the closed-form conditional."""

import math

import pytest
import torch
from conditioning_checks import SDES

import scoresde
from scoresde.conditioning import COLOR_BASIS, gaussian_posterior, grey_observation, to_grey
from scoresde.oracle import Gaussian


def colour_gaussian():
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(12, 12, generator=gen, dtype=torch.float64) / math.sqrt(12)
    return Gaussian(0.3 * torch.randn(3, 2, 2, generator=gen, dtype=torch.float64), cov=a @ a.T + 0.01 * torch.eye(12))


def test_colour_basis_is_orthogonal_with_the_grey_direction_first():
    torch.testing.assert_close(COLOR_BASIS.T @ COLOR_BASIS, torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(COLOR_BASIS[:, 0], torch.full((3,), 1 / math.sqrt(3), dtype=torch.float64))


@pytest.mark.parametrize("method", ["replacement", "repaint", "smc"])
@pytest.mark.parametrize("sde_name", sorted(SDES))
def test_colorized_samples_keep_the_grey_level(method, sde_name):
    g, sde = colour_gaussian(), SDES[sde_name]()
    grey = to_grey(g.sample(6, generator=torch.Generator().manual_seed(0)))
    x, info = scoresde.colorize(sde, g.score_fn(sde), grey, method=method, nfe=60,
                                generator=torch.Generator().manual_seed(1))  # fmt: skip
    assert x.shape == (6, 3, 2, 2) and info.nfe <= 60
    torch.testing.assert_close(to_grey(x), grey)
    assert x.std(1).min() > 0  # the colour channels are not all equal to the grey level


@pytest.mark.parametrize(
    "grey, match",
    [
        (torch.zeros(2, 3, 4, 4), "grey"),
        (torch.zeros(2, 4, 4), "grey"),
        (torch.full((2, 1, 4, 4), float("inf")), "grey"),
    ],
)
def test_bad_grey_input_raises_value_error(grey, match):
    with pytest.raises(ValueError, match=match):
        scoresde.colorize(scoresde.VPSDE(), lambda x, t: -x, grey, steps=2)


def test_grey_observation_needs_three_channels():
    with pytest.raises(ValueError, match="3-channel"):
        grey_observation((1, 4, 4))


def test_particle_filter_matches_the_exact_colour_conditional():
    """A Gaussian on (3, 2, 2) colour images: the two colour channels given the grey one, in closed form (VP)."""
    from conditioning_checks import fd_ratio

    g, sde = colour_gaussian(), scoresde.VPSDE()
    grey = to_grey(g.sample(1, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    post = gaussian_posterior(g, grey_observation((3, 2, 2)), grey[0].expand(3, 2, 2))
    batch = grey.expand(500, 1, 2, 2).clone()

    def ratio(**options):
        x, _ = scoresde.colorize(sde, g.score_fn(sde), batch, generator=torch.Generator().manual_seed(0), **options)
        return fd_ratio(post, x)

    smc, replacement = ratio(method="smc", particles=10, nfe=1000), ratio(method="replacement", nfe=1000)
    print(f"colour conditional: smc {smc:.1f}, replacement {replacement:.1f}")
    assert smc < 3.0 and replacement > 3 * smc
