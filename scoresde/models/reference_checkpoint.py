"""Load the released checkpoints of the reference implementation (yang-song/score_sde_pytorch) into NCSN++ / DDPM++.

A reference checkpoint is ``torch.save({"model", "ema", "optimizer", "step"})``: ``model`` is a DataParallel
state dict (keys ``module.all_modules.<i>.<block parameter>`` and ``module.sigmas``), ``ema`` holds
``shadow_params``, the EMA weights in the order of the model's trainable parameters. :class:`NCSNpp` registers its
blocks in the reference's order under the reference's block-level names, so the i-th ``all_modules`` entry maps
onto the i-th block here; names and shapes are checked one by one.

Score functions reproduce the reference's ``models/utils.py:get_score_fn`` (continuous models):

* VP and sub-VP (data in [-1, 1]): the network sees c = 999 t and predicts eps: score = -net(x, 999 t) / s(t).
  That is :class:`scoresde.ScoreModel` with ``prediction="eps"`` and no input scaling.
* VE (NCSN++ with ``scale_by_sigma``, data in [0, 1] in the reference): the network sees the noise level
  sigma(t) = sigma_min (sigma_max / sigma_min)^t and its output divided by sigma is the score. The library keeps
  data in [-1, 1], twice the reference's scale, so the same model is a VE SDE with sigma_min and sigma_max
  doubled, and score_[-1,1](x, t) = score_[0,1]((x + 1) / 2, t) / 2 (:class:`ReferenceVEScore`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .._utils import append_dims, batch_time
from .._validation import check_choice
from ..sde import SDE, VESDE, VPSDE, SubVPSDE
from .ncsnpp import DDPMpp, NCSNpp
from .parameterization import ScoreModel

_CIFAR10 = (3, 32, 32)
_NCSNPP_VP = dict(fir=True, progressive_input="residual", embedding_type="positional")  # NCSN++ on VP / sub-VP


@dataclass(frozen=True)
class ReferenceConfig:
    """A released configuration: which network (and arguments) and which SDE it was trained with."""

    net: type[NCSNpp]
    sde: str
    net_kwargs: dict[str, Any] = field(default_factory=dict)


REFERENCE_CONFIGS: dict[str, ReferenceConfig] = {
    "ve/cifar10_ncsnpp_continuous": ReferenceConfig(NCSNpp, "ve", dict(centered=False)),
    "ve/cifar10_ncsnpp_deep_continuous": ReferenceConfig(NCSNpp, "ve", dict(centered=False, num_res_blocks=8)),
    "vp/cifar10_ddpmpp_continuous": ReferenceConfig(DDPMpp, "vp"),
    "vp/cifar10_ddpmpp_deep_continuous": ReferenceConfig(DDPMpp, "vp", dict(num_res_blocks=8)),
    "vp/cifar10_ncsnpp_continuous": ReferenceConfig(NCSNpp, "vp", _NCSNPP_VP),
    "vp/cifar10_ncsnpp_deep_continuous": ReferenceConfig(NCSNpp, "vp", _NCSNPP_VP | dict(num_res_blocks=8)),
    "subvp/cifar10_ddpmpp_continuous": ReferenceConfig(DDPMpp, "subvp"),
    "subvp/cifar10_ddpmpp_deep_continuous": ReferenceConfig(DDPMpp, "subvp", dict(num_res_blocks=8)),
    "subvp/cifar10_ncsnpp_continuous": ReferenceConfig(NCSNpp, "subvp", _NCSNPP_VP),
    "subvp/cifar10_ncsnpp_deep_continuous": ReferenceConfig(NCSNpp, "subvp", _NCSNPP_VP | dict(num_res_blocks=8)),
}
"""The reference's CIFAR-10 continuous-time configs (``configs/<name>.py``) whose checkpoints load here."""


class ReferenceVEScore(nn.Module):
    """The score of a reference VE model (trained on [0, 1] data) for data in [-1, 1].

    score(x, t) = net((x + 1) / 2, sigma) / sigma / 2, sigma = sigma_lib(t) / 2 (the reference's noise level),
    where sigma_lib(t) is the noise level of ``sde``, the library's VE SDE for [-1, 1] data (sigma doubled).
    """

    def __init__(self, net: nn.Module, sde: VESDE) -> None:
        super().__init__()
        self.net, self.sde = net, sde

    def forward(self, x: Tensor, t: float | Tensor) -> Tensor:
        """x (B, C, H, W) in the [-1, 1] scale, t (B,) -> score (B, C, H, W)."""
        t = batch_time(t, x)
        sigma = self.sde.noise_level(t).to(x) / 2
        out = self.net(((x + 1) / 2).to(next(self.net.parameters()).dtype), sigma.to(next(self.net.parameters())))
        return out.to(x.dtype) / append_dims(2 * sigma, x.ndim)


def reference_sde(name: str) -> SDE:
    """The library SDE of a reference family (``"vp"``, ``"subvp"``, ``"ve"``) for data in [-1, 1]."""
    if name == "vp":
        return VPSDE(beta_min=0.1, beta_max=20.0)
    if name == "subvp":
        return SubVPSDE(beta_min=0.1, beta_max=20.0)
    if name == "ve":  # the reference's sigma_min 0.01, sigma_max 50 on [0, 1] data
        return VESDE(sigma_min=0.02, sigma_max=100.0)
    raise ValueError(f"sde must be 'vp', 'subvp' or 've', got {name!r}")


def reference_score_fn(net: nn.Module, sde: SDE, family: str) -> nn.Module:
    """``score_fn(x, t)`` of a reference network of ``family`` ("vp", "subvp", "ve") as its ``get_score_fn``
    (continuous) computes it, for the library SDE ``sde`` of :func:`reference_sde`."""
    if family == "ve":
        return ReferenceVEScore(net, sde)
    return ScoreModel(net, sde, prediction="eps", time_input="continuous", num_levels=1000, scale_input=False)


def _strip(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k.removeprefix("module."): v for k, v in state.items()}


def convert_state_dict(net: nn.Module, reference: dict[str, Tensor]) -> dict[str, Tensor]:
    """A reference model state dict (``module.`` prefixes allowed) renamed to ``net``'s keys.

    The i-th ``all_modules.<n>.<rest>`` entry becomes the i-th key of ``net.state_dict()``, which must end in
    ``<rest>`` and have the same shape. Raises ValueError naming the first mismatch.
    """
    ref = [(k, v) for k, v in _strip(reference).items() if k.startswith("all_modules.")]
    ours = list(net.state_dict().items())
    if len(ref) != len(ours):
        raise ValueError(f"the checkpoint has {len(ref)} tensors in all_modules, {type(net).__name__} {len(ours)}: "
                         "a different configuration (check config_name)")  # fmt: skip
    out = {}
    for (rk, rv), (ok, ov) in zip(ref, ours, strict=True):
        rest = rk.split(".", 2)[2]
        if not ok.endswith("." + rest) or rv.shape != ov.shape:
            raise ValueError(f"checkpoint tensor {rk} {tuple(rv.shape)} does not match {ok} {tuple(ov.shape)}: "
                             "a different configuration (check config_name)")  # fmt: skip
        out[ok] = rv
    return out


def load_reference_weights(net: nn.Module, checkpoint: dict[str, Any], ema: bool = True) -> None:
    """Load a reference checkpoint dict (model / ema / optimizer / step) into ``net``: raw or EMA weights."""
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise ValueError("a reference checkpoint is a dict with 'model', 'ema', 'optimizer' and 'step'")
    net.load_state_dict(convert_state_dict(net, checkpoint["model"]), strict=True)
    if ema:
        shadow = checkpoint.get("ema", {}).get("shadow_params")
        params = [p for p in net.parameters() if p.requires_grad]
        if shadow is None or len(shadow) != len(params):
            raise ValueError(f"the checkpoint's ema holds {None if shadow is None else len(shadow)} shadow "
                             f"parameters, the network {len(params)}")  # fmt: skip
        with torch.no_grad():
            for p, s in zip(params, shadow, strict=True):
                if p.shape != s.shape:
                    raise ValueError(f"EMA parameter of shape {tuple(s.shape)} for a parameter of {tuple(p.shape)}")
                p.copy_(s)


@dataclass
class ReferenceCheckpoint:
    """A loaded reference checkpoint: ``score_fn`` and ``sde`` work with ``scoresde.sample`` / ``log_likelihood``.

    Data are in [-1, 1] (shape (B, 3, 32, 32) for CIFAR-10), like every dataset of this library.
    """

    config_name: str
    net: nn.Module
    sde: SDE
    score_fn: nn.Module
    step: int
    event_shape: tuple[int, ...]


def load_reference_checkpoint(
    path: str | Path, config_name: str, *, ema: bool = True, map_location: str | torch.device = "cpu",
    event_shape: tuple[int, ...] = _CIFAR10,
) -> ReferenceCheckpoint:  # fmt: skip
    """Load a released checkpoint (e.g. ``checkpoint_26.pth`` of ``vp/cifar10_ddpmpp_continuous``).

    Args:
        path: The ``.pth`` file.
        config_name: Its reference config, a key of :data:`REFERENCE_CONFIGS`.
        ema: Use the EMA weights (what the paper evaluates); False: the raw weights.
        map_location: Device of the weights.
        event_shape: Image shape the configuration was trained at.
    """
    check_choice("config_name", config_name, REFERENCE_CONFIGS)
    spec = REFERENCE_CONFIGS[config_name]
    net = spec.net(event_shape, **spec.net_kwargs)
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    load_reference_weights(net, checkpoint, ema=ema)
    net = net.to(map_location).eval()
    sde = reference_sde(spec.sde)
    return ReferenceCheckpoint(config_name, net, sde, reference_score_fn(net, sde, spec.sde),
                               int(checkpoint.get("step", 0)), tuple(event_shape))  # fmt: skip
