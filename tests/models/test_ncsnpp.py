"""NCSN++ / DDPM++ building blocks against known answers, and the networks' shapes, options and errors."""

import pytest
import torch
import torch.nn.functional as F

import scoresde
from scoresde.models import DDPMpp, NCSNpp
from scoresde.models.fir import FIRConv2d, downsample_2d, fir_kernel, naive_upsample_2d, upfirdn2d, upsample_2d

SMALL = dict(nf=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.0)


def _x(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_fir_kernel_is_the_normalised_outer_product():
    k = fir_kernel([1, 3, 3, 1])
    assert torch.equal(k, torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64)
    with pytest.raises(ValueError, match="fir_kernel"):
        fir_kernel([1, -1])


def test_box_kernel_resampling_is_mean_pooling_and_nearest_upsampling():
    x = _x(2, 3, 8, 8)
    torch.testing.assert_close(downsample_2d(x, [1, 1]), F.avg_pool2d(x, 2), rtol=0, atol=1e-15)
    torch.testing.assert_close(upsample_2d(x, [1, 1]), naive_upsample_2d(x), rtol=0, atol=1e-15)


def test_fir_resampling_keeps_constants_away_from_the_border():
    x = torch.full((1, 2, 8, 8), 3.0, dtype=torch.float64)
    assert torch.allclose(downsample_2d(x)[..., 1:-1, 1:-1], x[..., :2, :2].new_full((1, 2, 2, 2), 3.0))
    assert torch.allclose(upsample_2d(x)[..., 2:-2, 2:-2], torch.full((1, 2, 12, 12), 3.0, dtype=torch.float64))


def test_upfirdn2d_is_a_direct_convolution_sum():
    x, k = _x(1, 1, 5, 5), _x(3, 3, seed=1)
    out = upfirdn2d(x, k, up=2, down=1, pad=(1, 1))
    up = torch.zeros(1, 1, 10, 10, dtype=torch.float64)
    up[..., ::2, ::2] = x
    up = F.pad(up, (1, 1, 1, 1))
    expected = torch.zeros_like(out)
    for i in range(out.shape[-2]):
        for j in range(out.shape[-1]):
            expected[..., i, j] = (up[..., i : i + 3, j : j + 3] * k.flip(0, 1)).sum()
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("up", [True, False])
def test_fused_fir_convolution_equals_resampling_then_convolution_inside(up):
    x = _x(2, 3, 8, 8)
    conv = FIRConv2d(3, 5, 3, up=up, down=not up).double()
    torch.nn.init.normal_(conv.weight)
    torch.nn.init.normal_(conv.bias)
    with torch.no_grad():
        fused = conv(x)
        plain = F.conv2d(x, conv.weight, conv.bias, padding=1)
        expected = F.conv2d(upsample_2d(x), conv.weight, conv.bias, padding=1) if up else downsample_2d(plain)
    inner = (slice(None), slice(None), slice(3, -3), slice(3, -3)) if up else (..., slice(1, -1), slice(1, -1))
    assert fused.shape == expected.shape == ((2, 5, 16, 16) if up else (2, 5, 4, 4))
    torch.testing.assert_close(fused[inner], expected[inner], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"progressive": "output_skip", "progressive_input": "input_skip", "progressive_combine": "cat"},
        {"progressive": "residual", "progressive_input": "residual"},
        {"resblock_type": "ddpm", "fir": False},
        {"resblock_type": "ddpm", "fir": True, "progressive": "residual"},  # FIR up-conv: the reference cannot run it
        {"embedding_type": "positional"},
    ],
)
def test_every_variant_maps_images_to_images_and_trains(options):
    net = NCSNpp((3, 8, 8), **SMALL, log_fourier_input=False, **options)
    x, c = torch.randn(2, 3, 8, 8), torch.tensor([3.0, 900.0])
    out = net(x, c)
    assert out.shape == x.shape and torch.isfinite(out).all()
    out.square().mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_ddpmpp_is_ncsnpp_without_fir_pyramids_or_fourier_features():
    net = DDPMpp((1, 8, 8), **SMALL)
    assert not net.down[0].blocks[0].res.fir and net.progressive_input == "none" and not hasattr(net.time, "fourier")
    model = scoresde.ScoreModel(net, scoresde.VPSDE())
    loss = scoresde.dsm_loss(model.sde, model, torch.randn(4, 1, 8, 8))
    loss.backward()
    assert torch.isfinite(loss)


def test_uncentred_input_is_mapped_to_minus_one_one():
    a, b = NCSNpp((3, 8, 8), **SMALL), NCSNpp((3, 8, 8), **SMALL, centered=False)
    b.load_state_dict(a.state_dict())
    x, c = torch.rand(2, 3, 8, 8), torch.tensor([0.5, 2.0])
    torch.testing.assert_close(b(x, c), a(2 * x - 1, c))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"event_shape": (3, 8, 6)}, "square"),
        ({"event_shape": (3, 6, 6), "ch_mult": (1, 2, 2)}, "divisible"),
        ({"progressive": "skip"}, "progressive"),
        ({"resblock_type": "resnet"}, "resblock_type"),
        ({"embedding_type": "learned"}, "embedding_type"),
        ({"progressive_input": "input_skip", "progressive_combine": "max"}, "progressive_combine"),
    ],
)
def test_bad_arguments(kwargs, match):
    kwargs = {"event_shape": (3, 8, 8)} | SMALL | kwargs
    with pytest.raises(ValueError, match=match):
        NCSNpp(**kwargs)
