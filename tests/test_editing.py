"""SDEdit, encode/decode and interpolation against closed forms: a Gaussian's exact score, flow map and marginals."""

import math

import pytest
import torch

import scoresde
from scoresde.editing import decode, edit_grid, encode, img2img, interpolate
from scoresde.oracle import Gaussian

DATA = Gaussian(torch.tensor([0.5, -1.0]), std=torch.tensor([0.3, 0.8]))


def _data(n, seed=0):
    return DATA.sample(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("t_start", [0.3, 0.7])
def test_img2img_with_the_ode_is_the_exact_flow_from_the_noised_input(sde, t_start):
    x = _data(256)
    g = torch.Generator().manual_seed(1)
    out, info = img2img(sde, DATA.score_fn(sde), x, t_start, solver="ode", method="rk4", steps=200, denoise=False,
                        generator=g)  # fmt: skip
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=x.dtype)
    x_t = float(sde.mean_scale(t_start)) * x + float(sde.std(t_start)) * z  # the exact kernel's draw
    torch.testing.assert_close(out, DATA.flow(sde, x_t, t_start, 1e-3), atol=2e-4, rtol=1e-4)
    assert float(info.times[0]) == t_start and info.steps == 200 and info.extras["t_start"] == t_start


def test_img2img_of_data_draws_is_distributed_as_the_data(sde):
    x = _data(20000)
    out, _ = img2img(sde, DATA.score_fn(sde), x, 0.5, solver="euler_maruyama", steps=200,
                     generator=torch.Generator().manual_seed(2))  # fmt: skip
    mean, std = DATA.mean.double(), torch.tensor([0.3, 0.8], dtype=torch.float64)
    torch.testing.assert_close(out.mean(0), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(out.std(0), std, atol=0.03, rtol=0)
    assert float((out - x).abs().mean()) > 0.05  # it did change the inputs


def test_img2img_from_T_is_sampling_from_the_noised_input():
    sde = scoresde.VPSDE()
    x = _data(64)
    score = DATA.score_fn(sde)
    out, info = img2img(sde, score, x, sde.T, solver="ode", method="heun", steps=20,
                        generator=torch.Generator().manual_seed(3))  # fmt: skip
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=x.dtype)
    x_T = float(sde.mean_scale(sde.T)) * x + float(sde.std(sde.T)) * z
    ref, ref_info = scoresde.sample(sde, score, None, start=x_T, solver="ode", method="heun", steps=20)
    torch.testing.assert_close(info.times, ref_info.times)
    torch.testing.assert_close(out, ref)
    assert info.nfe == ref_info.nfe


def test_the_edit_grid_is_the_tail_of_the_solvers_own_grid():
    sde = scoresde.VPSDE()
    solver = scoresde.sampling.make_solver("edm_heun")
    times = edit_grid(solver, sde, 0.5, 1e-3, 7)
    assert len(times) == 8 and float(times[0]) == 0.5 and float(times[-1]) == pytest.approx(1e-3)
    assert bool((times[1:] < times[:-1]).all())
    full = solver.grid(sde, 18, 1e-3)
    torch.testing.assert_close(edit_grid(solver, sde, sde.T, 1e-3, 18), full)


def test_img2img_refuses_a_start_outside_eps_to_T():
    sde = scoresde.VPSDE()
    with pytest.raises(ValueError, match=r"t_start must lie in \(eps, T\]"):
        img2img(sde, DATA.score_fn(sde), _data(2), 1.5)
    with pytest.raises(ValueError, match="steps or nfe"):
        img2img(sde, DATA.score_fn(sde), _data(2), 0.5, steps=3, nfe=3)


@pytest.mark.parametrize("method", ["dopri5", "rk4"])
def test_encode_is_the_exact_flow_map_and_decode_inverts_it(sde, method):
    x = _data(128)
    score = DATA.score_fn(sde)
    options = {"steps": 100} if method == "rk4" else {"rtol": 1e-7, "atol": 1e-7}
    z = encode(sde, score, x, method=method, **options)
    torch.testing.assert_close(z, DATA.flow(sde, x, 1e-3, sde.T), atol=1e-4, rtol=1e-4)
    back = decode(sde, score, z, method=method, **options)
    torch.testing.assert_close(back, x, atol=1e-4, rtol=1e-4)


def test_encode_agrees_with_the_likelihood_solves_latent():
    sde = scoresde.VPSDE()
    x = _data(16)
    result = scoresde.log_likelihood(sde, DATA.score_fn(sde), x, eps=1e-3, divergence="exact")
    torch.testing.assert_close(encode(sde, DATA.score_fn(sde), x), result.z.to(x.dtype), atol=1e-3, rtol=1e-3)


def test_spherical_interpolation():
    z0 = torch.tensor([[1.0, 0.0], [3.0, 0.0]], dtype=torch.float64)
    z1 = torch.tensor([[0.0, 1.0], [6.0, 0.0]], dtype=torch.float64)  # orthogonal; parallel
    path = interpolate(z0, z1, [0.0, 0.5, 1.0])
    assert path.shape == (3, 2, 2)
    torch.testing.assert_close(path[0], z0)
    torch.testing.assert_close(path[2], z1)
    torch.testing.assert_close(path[1, 0], torch.tensor([math.sqrt(0.5)] * 2, dtype=torch.float64))  # on the circle
    torch.testing.assert_close(path[1, 1], torch.tensor([4.5, 0.0], dtype=torch.float64))  # parallel: linear
    linear = interpolate(z0, z1, [0.5], spherical=False)
    torch.testing.assert_close(linear[0, 0], torch.tensor([0.5, 0.5], dtype=torch.float64))
    with pytest.raises(ValueError, match="weights"):
        interpolate(z0, z1, [1.5])


def test_slerp_keeps_gaussian_latents_at_their_typical_norm():
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(64, 1000, generator=g), torch.randn(64, 1000, generator=g)
    mid = interpolate(z0, z1, [0.5])[0]
    assert abs(float(mid.norm(dim=1).mean()) / math.sqrt(1000) - 1) < 0.02
    assert abs(float(interpolate(z0, z1, [0.5], spherical=False)[0].norm(dim=1).mean()) / math.sqrt(500) - 1) < 0.02
