"""The U-Net: shapes for the supported image sizes, padding, time dependence, config errors."""

import pytest
import torch

from scoresde.models import UNet, count_parameters

SMALL = dict(channels=8, norm_groups=4)


def _randomise(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize(
    "event_shape, ch_mult, padded",
    [
        ((1, 8, 8), (1, 1), (8, 8)),
        ((1, 28, 28), (1, 2, 2), (28, 28)),
        ((1, 28, 28), (1, 2, 2, 2), (32, 32)),
        ((3, 32, 32), (1, 2, 2, 2), (32, 32)),
        ((2, 6, 10), (1, 2, 2), (8, 12)),
    ],
)
def test_output_shape_and_padding(event_shape, ch_mult, padded):
    net = UNet(event_shape, ch_mult=ch_mult, attn_levels=(1,), **SMALL)
    assert net.padded_size() == padded
    x = torch.randn(2, *event_shape)
    out = net(x, torch.tensor([3.0, 700.0]))
    assert out.shape == x.shape
    assert torch.equal(out, torch.zeros_like(x)), "the zero-initialised output conv makes a fresh net output 0"


def test_output_depends_on_time_and_input_per_sample():
    torch.manual_seed(0)
    net = UNet((1, 8, 8), attn_levels=(0, 1), dropout=0.1, **SMALL).eval()
    _randomise(net)
    x = torch.randn(3, 1, 8, 8)
    a = net(x, torch.full((3,), 10.0))
    b = net(x, torch.full((3,), 900.0))
    assert (a - b).abs().max() > 1e-2
    # samples do not leak into each other: changing sample 0 leaves samples 1, 2 alone (GroupNorm, not BatchNorm)
    x2 = x.clone()
    x2[0] += 1
    c = net(x2, torch.full((3,), 10.0))
    torch.testing.assert_close(c[1:], a[1:])
    assert (c[0] - a[0]).abs().max() > 1e-3
    # eval mode is deterministic despite dropout
    torch.testing.assert_close(net(x, torch.full((3,), 10.0)), a)


def test_padding_does_not_leak_into_the_output():
    """A 6x6 image padded to 8x8: the output is cropped back and is exactly 6x6 with gradients only to the input."""
    net = UNet((1, 6, 6), ch_mult=(1, 2, 2), attn_levels=(), **SMALL)
    _randomise(net)
    x = torch.randn(2, 1, 6, 6, requires_grad=True)
    out = net(x, torch.tensor([1.0, 2.0]))
    assert out.shape == (2, 1, 6, 6)
    out.sum().backward()
    assert x.grad.shape == x.shape and bool(torch.isfinite(x.grad).all())


def test_attention_and_depth_change_the_parameter_count():
    base = count_parameters(UNet((1, 8, 8), ch_mult=(1, 2), attn_levels=()))
    assert count_parameters(UNet((1, 8, 8), ch_mult=(1, 2), attn_levels=(1,))) > base
    assert count_parameters(UNet((1, 8, 8), ch_mult=(1, 2), attn_levels=(), num_res_blocks=2)) > base
    assert count_parameters(UNet((1, 8, 8), ch_mult=(1, 2, 2), attn_levels=())) > base


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"event_shape": (8, 8)}, "event_shape must be"),
        ({"ch_mult": ()}, "ch_mult"),
        ({"attn_levels": (3,)}, "attn_levels"),
        ({"ch_mult": (1, 2, 2, 2, 2)}, "too many"),
        ({"channels": 0}, "channels"),
        ({"num_heads": 3}, "num_heads"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_bad_configuration_is_named(kwargs, match):
    kwargs = {"event_shape": (1, 8, 8), **kwargs}
    with pytest.raises(ValueError, match=match):
        UNet(**kwargs)


def test_rejects_wrong_input_shape():
    with pytest.raises(ValueError, match="must have shape"):
        UNet((1, 8, 8), **SMALL)(torch.randn(2, 1, 7, 7), torch.zeros(2))
