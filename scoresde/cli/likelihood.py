"""``python -m scoresde.likelihood ckpt=PATH [data=NAME] [split=test]`` / ``scoresde-likelihood``.

Loads a training checkpoint (EMA weights by default), evaluates the probability-flow likelihood of a data
split batch by batch (bits/dim with uniform dequantisation for discrete data, nats/dim for continuous data),
prints mean ± standard error, NFE per batch and wall time beside two baselines fitted to the training split
(per-pixel categorical, full-covariance Gaussian), and writes ``likelihood.json`` and the value of every example
(``per_example.csv`` with columns ``index,<unit>``, and ``per_example.npz`` with ``index``, ``value`` and, with
``n_dequant > 1``, ``value_iw``; index i is example i of the split) into the run directory
(``outputs/likelihood/DATE/TIME/``), so that two models or settings can be compared example by example.
Under ``torchrun --nproc_per_node=N`` the batches are dealt to the ranks (batch k draws its dequantisation noise
and probes from seed (seed, k), so any N gives the same numbers) and rank 0 gathers them and writes the summary.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from .._instantiate import instantiate
from .._validation import check_int
from ..distributed import chunk_generator, gather_to_main, process_group, shard
from ..likelihood.baselines import fit_baselines
from ..likelihood.divergence import choose_divergence
from ..likelihood.ode import bits_per_dim, log_likelihood
from ..likelihood.quantization import BitsPerDim
from ..training.checkpoint import load_checkpoint
from ._runtime import CONF_DIR, SettingError, plain_config, run_command

log = logging.getLogger("scoresde.likelihood")


def write_per_example(run_dir: Path, unit: str, values: torch.Tensor, values_iw: torch.Tensor | None) -> list[Path]:
    """per_example.csv (``index,<unit>``) and per_example.npz (``index``, ``value``[, ``value_iw``]) in run_dir."""
    import numpy as np

    index = np.arange(len(values))
    arrays = {"index": index, "value": values.double().numpy(), "unit": np.array(unit)}
    if values_iw is not None:
        arrays["value_iw"] = values_iw.double().numpy()
    np.savez_compressed(run_dir / "per_example.npz", **arrays)
    header = "index," + unit.replace("/", "_per_") + (",importance_weighted" if values_iw is not None else "")
    rows = [header] + [
        f"{i},{v:.6f}" + (f",{float(values_iw[i]):.6f}" if values_iw is not None else "")
        for i, v in enumerate(values.double().tolist())
    ]
    (run_dir / "per_example.csv").write_text("\n".join(rows) + "\n")
    return [run_dir / "per_example.csv", run_dir / "per_example.npz"]


def evaluate(cfg: dict[str, Any], device: torch.device, run_dir: Path | None = None) -> dict[str, Any] | None:
    """Evaluate the likelihood as the (plain) config says; returns the JSON summary (None on ranks other than 0).

    With ``run_dir``, also writes every example's value there (:func:`write_per_example`).
    """
    ckpt = load_checkpoint(cfg["ckpt"], map_location=device, ema=bool(cfg["ema"]))
    data_cfg = cfg.get("data") or ckpt.config["data"]
    dataset = instantiate(data_cfg["dataset"])
    if tuple(dataset.event_shape) != tuple(ckpt.event_shape):
        raise SettingError(f"data: dataset {dataset.name} has event shape {dataset.event_shape}, the model "
                           f"{ckpt.event_shape}")  # fmt: skip
    x_all = dataset.split(cfg["split"])
    if cfg["limit"] is not None:
        x_all = x_all[: check_int("limit", cfg["limit"])]
    batch_size = check_int("batch_size", cfg["batch_size"])
    dim = math.prod(dataset.event_shape)
    divergence = choose_divergence(cfg["divergence"], dim, int(cfg["exact_max_dim"]))
    solver = dict(divergence=divergence, n_probes=int(cfg["n_probes"]), method=cfg["method"], rtol=float(cfg["rtol"]),
                  atol=float(cfg["atol"]), eps=float(cfg["eps"]))  # fmt: skip
    levels, data_range = dataset.levels, tuple(dataset.data_range)
    centred = cfg["centred_bins"]  # auto: the bins the model was trained on (centred when trained dequantised)
    centred = bool(ckpt.config["data"].get("dequantize", False)) if centred == "auto" else bool(centred)
    unit = "nats/dim" if levels is None else "bits/dim"
    group = process_group()
    log.info("checkpoint %s (step %d), %s split %s: %d examples of %s, divergence %s, rtol %g, atol %g",
             ckpt.path, ckpt.step, dataset.name, cfg["split"], x_all.shape[0], dataset.event_shape, divergence,
             solver["rtol"], solver["atol"])  # fmt: skip

    local, values, start = {}, [], time.perf_counter()
    batches = shard(range(0, x_all.shape[0], batch_size), group)
    progress = bool(cfg["progress"]) and group.is_main  # a bar over the batches, and one over [eps, T] in each batch
    bar = tqdm(batches, desc=unit, disable=not progress, dynamic_ncols=True)
    for i in bar:
        x = x_all[i : i + batch_size].to(device)
        gen = chunk_generator(int(cfg["seed"]), i // batch_size, device)
        if levels is None:
            res = log_likelihood(ckpt.sde, ckpt.score_fn, x, generator=gen, progress=progress, **solver)
            values.append(res.nats_per_dim.double().cpu())
            local[i] = (values[-1], None, res.nfe)
        else:
            res = bits_per_dim(ckpt.sde, ckpt.score_fn, x, levels=levels, data_range=data_range,
                               n_dequant=int(cfg["n_dequant"]), centred_bins=centred,
                               generator=gen, progress=progress, **solver)  # fmt: skip
            values.append(res.per_sample)
            local[i] = (res.per_sample.cpu(), res.per_sample_iw.cpu(), res.nfe)
        bar.set_postfix(mean=f"{float(torch.cat(values).mean()):.4f}", nfe=res.nfe)
    wall = time.perf_counter() - start
    merged = gather_to_main(local, group)
    if merged is None:
        return None
    values = [v[0] for v in merged.values()]
    values_iw = [v[1] for v in merged.values() if v[1] is not None]
    nfes = [v[2] for v in merged.values()]
    model = BitsPerDim.from_values(torch.cat(values), nfe=sum(nfes), wall_time=wall)
    baselines = fit_baselines(dataset.train, x_all.cpu(), levels, data_range, int(cfg["n_dequant"]), int(cfg["seed"]),
                              centred_bins=centred)  # fmt: skip
    summary = {
        "checkpoint": str(ckpt.path),
        "step": ckpt.step,
        "dataset": dataset.name,
        "split": cfg["split"],
        "n": int(x_all.shape[0]),
        "unit": unit,
        "model": {"mean": model.mean, "stderr": model.stderr},
        "baselines": {name: {"mean": b.mean, "stderr": b.stderr} for name, b in baselines.items()},
        "nfe_per_batch": nfes,
        "wall_time_s": wall,
        "settings": {
            **solver,
            "n_dequant": int(cfg["n_dequant"]),
            "centred_bins": centred,
            "batch_size": batch_size,
            "seed": int(cfg["seed"]),
            "ema": bool(cfg["ema"]),
            "device": str(device),
            "processes": group.world_size,
        },  # fmt: skip
    }
    if values_iw and int(cfg["n_dequant"]) > 1:
        iw = BitsPerDim.from_values(torch.cat(values_iw))
        summary["model_importance_weighted"] = {"mean": iw.mean, "stderr": iw.stderr}
    if run_dir is not None:
        iw_all = torch.cat(values_iw).cpu() if values_iw and int(cfg["n_dequant"]) > 1 else None
        paths = write_per_example(run_dir, unit, torch.cat(values).cpu(), iw_all)
        summary["per_example"] = [p.name for p in paths]
    return summary


def format_summary(s: dict[str, Any]) -> str:
    """The printed table: the model, then the baselines, in the summary's unit."""
    rows = [("score model (probability-flow ODE)", s["model"])]
    if "model_importance_weighted" in s:
        rows.append((f"  importance-weighted, {s['settings']['n_dequant']} draws", s["model_importance_weighted"]))
    rows += list(s["baselines"].items())
    width = max(len(r[0]) for r in rows)
    nfe = s["nfe_per_batch"]
    lines = [f"{s['dataset']} {s['split']} split, {s['n']} examples, {s['unit']} (mean ± standard error):"]
    lines += [f"  {name:<{width}}  {v['mean']:.4f} ± {v['stderr']:.4f}" for name, v in rows]
    lines.append(f"NFE per batch: {nfe} (mean {sum(nfe) / len(nfe):.1f}); wall time {s['wall_time_s']:.1f} s")
    return "\n".join(lines)


def run(cfg: DictConfig, run_dir: Path, device: torch.device) -> None:
    """Evaluate as ``cfg`` says; rank 0, which holds the gathered result, writes ``likelihood.json`` and prints it."""
    summary = evaluate(plain_config(cfg), device, run_dir)
    if summary is not None:
        out = run_dir / "likelihood.json"
        out.write_text(json.dumps(summary, indent=2) + "\n")
        print(format_summary(summary))
        log.info("wrote %s and every example's value in %s", out, " and ".join(summary["per_example"]))


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="likelihood")
def main(cfg: DictConfig) -> None:
    """Console-script entry point (``scoresde-likelihood``)."""
    run_command(cfg, run)


if __name__ == "__main__":
    main()
