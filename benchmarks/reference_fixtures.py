"""Make the NCSN++ / DDPM++ equivalence fixtures from the reference implementation (yang-song/score_sde_pytorch).

    python benchmarks/reference_fixtures.py --repo /path/to/score_sde_pytorch [--out tests/models/fixtures]

The reference code is never part of this project: its model files are extracted at run time (``git show`` from a
clone, or copied from a checkout) into a temporary directory and imported from there. Its ``op/`` package
compiles CUDA extensions at import time; the extracted ``op/upfirdn2d.py`` is patched to skip the compilation
(on CPU the reference itself calls its pure-PyTorch ``upfirdn2d_native``), and ``op/__init__.py`` is replaced by
one line that imports it. One call in ``models/layerspp.py``, ``F.interpolate(x, size, 'nearest')``, gets
``mode=`` by keyword: current PyTorch reads a third positional argument as ``scale_factor`` and refuses it.

For each small configuration below the script instantiates the reference network, draws random weights (so no layer
is the near-zero ``init_scale=0`` initialisation), wraps it in ``DataParallel`` (``module.`` prefixes), builds the
reference's checkpoint layout (model / ema / optimizer / step, EMA shadow weights perturbed so they differ from the
raw weights) and stores fixed inputs with the network's outputs for both weight sets and the reference
``get_score_fn`` scores. It also writes the parameter counts of the paper's full-size CIFAR-10 configurations and
the state-dict layout (keys and shapes) of every released CIFAR-10 configuration.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch

FILES = ["sde_lib.py", "models/__init__.py", "models/utils.py", "models/layers.py", "models/layerspp.py",
         "models/normalization.py", "models/up_or_down_sampling.py", "models/ncsnpp.py", "models/ema.py",
         "op/upfirdn2d.py"]  # fmt: skip

# Small configurations (8x8 images, nf 4) covering every branch the released CIFAR-10 models use, and
# NCSN++'s pyramids. Keys are the reference's config.model fields; "sde" picks its SDE and score function.
BASE = dict(nf=4, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.1, resamp_with_conv=True,
            conditional=True, fir_kernel=[1, 3, 3, 1], skip_rescale=True, init_scale=0.0, fourier_scale=16,
            progressive_combine="sum", nonlinearity="swish", normalization="GroupNorm", attention_type="ddpm",
            conv_size=3, sigma_min=0.01, sigma_max=50.0, num_scales=1000, beta_min=0.1, beta_max=20.0)  # fmt: skip
SMALL = {
    # ve/cifar10_ncsnpp_continuous, scaled down: FIR, BigGAN blocks, input pyramid 'residual', Fourier, [0, 1] data
    "ncsnpp_ve": dict(sde="ve", centered=False, fir=True, resblock_type="biggan", progressive="none",
                      progressive_input="residual", embedding_type="fourier", scale_by_sigma=True),
    # vp/cifar10_ddpmpp_continuous, scaled down
    "ddpmpp_vp": dict(sde="vp", centered=True, fir=False, resblock_type="biggan", progressive="none",
                      progressive_input="none", embedding_type="positional", scale_by_sigma=False),
    # subvp/cifar10_ncsnpp_continuous, scaled down (NCSN++ with sinusoidal features)
    "ncsnpp_subvp": dict(sde="subvp", centered=True, fir=True, resblock_type="biggan", progressive="none",
                         progressive_input="residual", embedding_type="positional", scale_by_sigma=False),
    # the paper's NCSN++ pyramids: output_skip + input_skip with concatenation
    "ncsnpp_skip": dict(sde="ve", centered=False, fir=True, resblock_type="biggan", progressive="output_skip",
                        progressive_input="input_skip", progressive_combine="cat", embedding_type="fourier",
                        scale_by_sigma=True),
    # residual output pyramid and DDPM blocks (naive resampling: the reference's fused FIR up-conv cannot run,
    # it slices a tensor with a negative step)
    "ncsnpp_residual_ddpm_blocks": dict(sde="vp", centered=True, fir=False, resblock_type="ddpm",
                                        progressive="residual", progressive_input="residual",
                                        embedding_type="positional", scale_by_sigma=False),
}  # fmt: skip
FULL = {
    "ncsnpp": ("ve", "configs/ve/cifar10_ncsnpp_continuous.py"),
    "ncsnpp_deep": ("ve", "configs/ve/cifar10_ncsnpp_deep_continuous.py"),
    "ddpmpp": ("vp", "configs/vp/cifar10_ddpmpp_continuous.py"),
    "ddpmpp_deep": ("vp", "configs/vp/cifar10_ddpmpp_deep_continuous.py"),
}


RELEASED = [f"{sde}/cifar10_{net}{deep}_continuous" for sde in ("vp", "subvp") for net in ("ddpmpp", "ncsnpp")
            for deep in ("", "_deep")]  # fmt: skip
RELEASED += ["ve/cifar10_ncsnpp_continuous", "ve/cifar10_ncsnpp_deep_continuous"]


def extract(repo: Path, dest: Path) -> str:
    """Copy the reference files into ``dest`` (patching the CUDA build away); returns the commit or 'checkout'."""
    is_git = (repo / "HEAD").is_file() or (repo / ".git").exists()
    commit = "checkout"
    if is_git:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()  # fmt: skip
    for name in FILES:
        text = (
            subprocess.run(
                ["git", "-C", str(repo), "show", f"HEAD:{name}"], capture_output=True, text=True, check=True
            ).stdout  # fmt: skip
            if is_git
            else (repo / name).read_text()
        )
        if name == "models/layerspp.py":  # torch >= 1.x reads a third positional argument as scale_factor
            text = text.replace("(H * 2, W * 2), 'nearest')", "(H * 2, W * 2), mode='nearest')")
        if name == "op/upfirdn2d.py":  # no CUDA build at import: the CPU path uses upfirdn2d_native
            text, n = re.subn(r"upfirdn2d_op = load\([\s\S]*?\n\)\n", "upfirdn2d_op = None\n", text)
            if n != 1:
                raise RuntimeError("could not find the CUDA extension build in op/upfirdn2d.py")
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_text(text)
    (dest / "op" / "__init__.py").write_text("from .upfirdn2d import upfirdn2d\n")
    return commit


def reference_config(model: dict, image_size: int, centered: bool, continuous: bool = True) -> SimpleNamespace:
    return SimpleNamespace(
        model=SimpleNamespace(name="ncsnpp", **model),
        data=SimpleNamespace(image_size=image_size, num_channels=3, centered=centered),
        training=SimpleNamespace(continuous=continuous),
    )


def randomize(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Weights of order-one activations everywhere: U(+-sqrt(3 / fan_in)) for matrices, small random vectors."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue  # the fixed Fourier frequencies keep their N(0, 16^2) draw
            if p.ndim >= 2:
                fan_in = p[0].numel() if not name.endswith(".W") else p.shape[0]
                p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * (3 / fan_in) ** 0.5)
            else:
                base = 1.0 if "GroupNorm" in name and name.endswith("weight") else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=gen))


def make_small(name: str, spec: dict, mods: SimpleNamespace, out_dir: Path, commit: str) -> None:
    spec = dict(spec)
    sde_name, centered = spec.pop("sde"), spec.pop("centered")
    model_cfg = BASE | spec
    size = 8
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    config = reference_config(model_cfg, size, centered)
    net = mods.ncsnpp.NCSNpp(config)
    randomize(net, gen)
    model = torch.nn.DataParallel(net)
    ema = mods.ema.ExponentialMovingAverage(model.parameters(), decay=0.999)
    for s in ema.shadow_params:
        s.add_(0.05 * torch.randn(s.shape, generator=gen))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    state = {"optimizer": optimizer.state_dict(), "model": model.state_dict(), "ema": ema.state_dict(), "step": 7}
    state = copy.deepcopy(state)  # state_dict() shares storage with the weights that ema.copy_to overwrites below
    x = torch.rand(2, 3, size, size, generator=gen)
    if centered:
        x = 2 * x - 1
    t = torch.tensor([0.3, 0.8])
    sde = {"ve": mods.sde_lib.VESDE(0.01, 50.0, 1000), "vp": mods.sde_lib.VPSDE(0.1, 20.0, 1000),
           "subvp": mods.sde_lib.subVPSDE(0.1, 20.0, 1000)}[sde_name]  # fmt: skip
    labels = sde.marginal_prob(torch.zeros_like(x), t)[1] if sde_name == "ve" else t * 999
    with torch.no_grad():
        model.eval()
        out = model(x, labels)
        score = mods.utils.get_score_fn(sde, model, train=False, continuous=True)(x, t)
        ema.copy_to(model.parameters())
        out_ema = model(x, labels)
    fixture = {"reference_commit": commit, "config": {"sde": sde_name, "centered": centered, **model_cfg},
               "checkpoint": state, "x": x, "t": t, "labels": labels, "output": out, "output_ema": out_ema,
               "score": score}  # fmt: skip
    torch.save(fixture, out_dir / f"reference_{name}.pt")
    print(f"{name}: {sum(p.numel() for p in net.parameters())} parameters, |out| {out.abs().mean():.3f}")


def load_full_config(repo: Path, tmp: Path, path: str):
    """The reference's own config file (ml_collections replaced by SimpleNamespace-like attribute dicts)."""

    class Config(dict):
        __getattr__ = dict.__getitem__

        def __setattr__(self, k, v):
            self[k] = v

    ml = SimpleNamespace(ConfigDict=Config)
    sys.modules["ml_collections"] = ml
    for name in ("configs/default_cifar10_configs.py", path):
        text = subprocess.run(["git", "-C", str(repo), "show", f"HEAD:{name}"], capture_output=True, text=True,
                              check=True).stdout  # fmt: skip
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(text)
    (tmp / "configs" / "__init__.py").touch()
    ns: dict = {}
    exec(compile((tmp / path).read_text(), path, "exec"), ns)
    return ns["get_config"]()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_repo = (
        Path(os.environ.get("SCORESDE_REFERENCE_ROOT", "references")) / "yang-song+score_sde_pytorch" / "repo"
    )
    parser.add_argument("--repo", type=Path, default=default_repo, help="git directory of score_sde_pytorch")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests/models/fixtures")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        commit = extract(args.repo, tmp)
        sys.path.insert(0, str(tmp))
        import models.ema
        import models.ncsnpp
        import models.utils
        import sde_lib

        mods = SimpleNamespace(ncsnpp=models.ncsnpp, ema=models.ema, utils=models.utils, sde_lib=sde_lib)
        for name, spec in SMALL.items():
            make_small(name, spec, mods, args.out, commit)
        counts = {"reference_commit": commit}
        for name, (_, path) in FULL.items():
            config = load_full_config(args.repo, tmp, path)
            config.data.num_channels = 3
            net = models.ncsnpp.NCSNpp(config)
            counts[name] = {
                "config": path,
                "parameters": sum(p.numel() for p in net.parameters()),
                "trainable": sum(p.numel() for p in net.parameters() if p.requires_grad),
            }
            print(name, counts[name])
            del net
        (args.out / "reference_param_counts.json").write_text(json.dumps(counts, indent=2) + "\n")
        layouts = {"reference_commit": commit}
        for name in RELEASED:  # what the released checkpoints hold: DataParallel keys and shapes, no weights
            config = load_full_config(args.repo, tmp, f"configs/{name}.py")
            config.data.num_channels = 3
            net = torch.nn.DataParallel(models.ncsnpp.NCSNpp(config))
            layouts[name] = [[k, list(v.shape)] for k, v in net.state_dict().items()]
            print(name, len(layouts[name]), "tensors")
            del net
        with gzip.open(args.out / "reference_layouts.json.gz", "wt") as f:
            json.dump(layouts, f)


if __name__ == "__main__":
    main()
