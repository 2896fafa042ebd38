"""The training loop: one objective, AdamW with linear warm-up, gradient clipping, EMA, checkpoints, metrics.

The loop is written once for every model, objective, SDE and device, single-process or under
``torchrun`` (DistributedDataParallel, data sharded by rank, files written by rank 0 only). Every source of
randomness is either a generator the trainer owns (data order, training noise) or the global RNGs, and all of
them go into the checkpoint, so a resumed run reproduces an uninterrupted one exactly (CPU, same world size).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..batching import BatchOrder
from .checkpoint import (
    FORMAT,
    VERSION,
    CheckpointManager,
    CheckpointWriteError,
    config_diff,
    load_state_checked,
    read_checkpoint,
    rng_state,
    set_aside,
    set_rng_state,
)
from .config import PRECISIONS, TrainConfig
from .ema import make_ema
from .interrupt import TrainingInterrupted, deferred_interrupt
from .objectives import drop_labels

__all__ = ["Trainer", "Callback", "TrainConfig", "TrainResult", "NonFiniteLossError", "TrainingInterrupted",
           "replica_deviation", "PRECISIONS"]  # fmt: skip

RESUME_MUST_MATCH = ("sde", "model", "data", "seed")
"""Top-level config sections that must equal the checkpoint's for ``resume`` (train.* may change, e.g. steps)."""


class NonFiniteLossError(FloatingPointError):
    """The loss or the gradient norm became NaN/inf; training stopped without saving the broken state."""


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns.

    Attributes:
        step: The final step.
        loss: The last logged loss: the mean over the last ``loss_steps`` steps (as in metrics.jsonl).
        steps_per_s: Steps of this call per second.
        wall_time: Seconds this call trained (a resumed run: since the resume).
        checkpoint: The last checkpoint written.
        replica_deviation: max |theta - theta_rank0| over DDP replicas.
        steps_run: Steps this call ran (``step`` minus the step it started or resumed from).
        loss_steps: Number of steps averaged in ``loss``.
    """

    step: int
    loss: float
    steps_per_s: float
    wall_time: float
    checkpoint: Path | None
    replica_deviation: float = 0.0
    steps_run: int = 0
    loss_steps: int = 0


def replica_deviation(model: nn.Module) -> float:
    """max |theta - theta_rank0| over all parameters and DDP ranks (0.0 in a single process)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return 0.0
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    deviation = (flat - reference).abs().max()
    dist.all_reduce(deviation, op=dist.ReduceOp.MAX)
    return float(deviation)


class _ObjectiveModule(nn.Module):
    """Model + objective as one module whose forward returns the loss, so DDP sees every network call."""

    def __init__(self, model: nn.Module, objective: Callable[..., Tensor]) -> None:
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, x0: Tensor, generator: torch.Generator, y: Tensor | None = None) -> Tensor:
        return self.objective(self.model, x0, generator) if y is None else self.objective(self.model, x0, generator, y)


Snapshot = Callable[[nn.Module, int], Any]
"""``snapshot(ema_model, step)``: called on rank 0 every ``sample_every`` steps and at the end."""


class Callback:
    """What the trainer reports, as hooks called on rank 0; override the ones you need (each is a no-op here).

    The trainer itself writes only checkpoints and ``metrics.jsonl``; figures and other reports are callbacks (the
    CLI passes :class:`scoresde.cli.snapshots.LossCurve`, which plots ``loss.png``).
    """

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """After each logged record (every ``log_every`` steps): the record written to ``metrics.jsonl``."""

    def on_fit_end(self, trainer: Trainer, result: TrainResult) -> None:
        """Once :meth:`Trainer.fit` has finished (after the final snapshot), with what it returns."""


class Trainer:
    """Trains a score model on an in-memory data tensor.

    Args:
        model: A ``ScoreModel`` (``model(x, t)`` the score, ``model.sde`` its SDE).
        data: Training data, shape (N, *event_shape), in the model range.
        config: Optimisation settings.
        run_dir: Where checkpoints/ and metrics.jsonl go (None: write nothing).
        seed: Seeds the data order and the training noise (each rank adds its rank to the noise seed).
        device: Where to train.
        snapshot: Optional callback drawing samples with the EMA model (see :data:`Snapshot`).
        transform: Optional augmentation ``transform(x, generator=...) -> x`` applied to every batch (it draws
            from the trainer's noise generator, so resuming stays exact).
        run_config: The resolved configuration (plain dicts) stored in checkpoints.
        progress: Show a tqdm bar (rank 0).
        labels: Class labels of ``data`` (N,) for a label-conditional model (``model.num_classes``); each batch's
            labels go to the objective after label dropout (``config.label_dropout``).
        callbacks: :class:`Callback` objects told of every logged record and of the end of :meth:`fit` (rank 0).
    """

    def __init__(
        self,
        model: nn.Module,
        data: Tensor,
        config: TrainConfig,
        *,
        run_dir: str | Path | None = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
        snapshot: Snapshot | None = None,
        transform: Callable[..., Tensor] | None = None,
        run_config: dict[str, Any] | None = None,
        progress: bool = True,
        labels: Tensor | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.config, self.device = config, torch.device(device)
        self.callbacks = list(callbacks)
        if labels is not None and getattr(model, "num_classes", None) is None:
            raise ValueError("labels were given but the model takes none: build the network with num_classes")
        self.labels = labels.to(device) if labels is not None else None
        if config.precision != "fp32" and self.device.type != "cuda":
            raise ValueError(f"precision={config.precision!r} (mixed precision) needs a CUDA device, got {device}")
        self.rank, self.world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.snapshot, self.run_config, self.progress = snapshot, run_config or {}, progress
        self.transform = transform
        self.model = model.to(self.device)
        if isinstance(config.objective, nn.Module):
            config.objective.to(self.device)
        self.module: nn.Module = _ObjectiveModule(self.model, config.objective)
        if self.world > 1:  # broadcasts rank 0's weights, so the replicas (and their EMAs) start equal
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.module = nn.parallel.DistributedDataParallel(self.module, device_ids=ids)
        self.ema = make_ema(
            self.model,
            decay=config.ema_decay,
            warmup=config.ema_warmup,
            halflife=config.ema_halflife,
            rampup=config.ema_rampup,
            sigma_rel=config.ema_sigma_rel,
            batch_size=config.batch_size,
        )
        # the model's parameters and the objective's own, if any (EDM2's learned uncertainty weighting)
        self.objective_params = list(config.objective.parameters()) if isinstance(config.objective, nn.Module) else []
        self.optimizer = torch.optim.AdamW(
            [*self.model.parameters(), *self.objective_params], lr=config.lr, betas=config.adam_betas,
            weight_decay=config.weight_decay,
        )  # fmt: skip
        self.scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
        self.order = BatchOrder(data.shape[0], config.batch_size, rank=self.rank, world_size=self.world, seed=seed)
        self.data = data.to(self.device)
        self.noise = torch.Generator(self.device).manual_seed(seed * 7919 + 104729 + self.rank)
        self.step = 0
        self.checkpoints = CheckpointManager(self.run_dir / "checkpoints", config.keep_checkpoints) if run_dir else None
        self.metrics_path = self.run_dir / "metrics.jsonl" if run_dir else None

    # ------------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, EMA, optimiser, RNGs, data order, step, config."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "step": self.step,
            "event_shape": list(self.data.shape[1:]),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "grad_scaler": self.scaler.state_dict() if self.scaler else None,
            "rng": rng_state({"noise": self.noise, "data_order": self.order.generator}),
            "data_order": self.order.state_dict(),
            "world_size": self.world,
            "config": self.run_config,
            # objectives with state of their own (EDM2's learned uncertainty weighting; a consistency objective's
            # step and EMA target network)
            "objective": self.config.objective.state_dict() if hasattr(self.config.objective, "state_dict") else None,
        }

    def resume(self, path: str | Path) -> None:
        """Load a checkpoint written by :meth:`state_dict`; differing configs are named in the error.

        Later checkpoints in this trainer's run directory would be overwritten by the continued run: a readable one
        makes this raise ValueError (resume from it instead); damaged ones are set aside as ``*.pt.damaged``.
        """
        state = read_checkpoint(path, map_location="cpu")  # RNG states must stay CPU tensors; weights are copied
        diffs = config_diff(state["config"], self.run_config, keys=RESUME_MUST_MATCH)
        if diffs and self.run_config:
            raise ValueError(
                f"cannot resume from {path}: the config differs from the checkpoint's:\n  " + "\n  ".join(diffs)
            )
        if state["world_size"] != self.world:
            raise ValueError(f"{path} was written by {state['world_size']} processes, this run has {self.world}")
        if self.checkpoints is not None:  # later checkpoints of this run directory would be overwritten or mixed in
            newer, damaged = self.checkpoints.newer_than(int(state["step"]))
            if newer:
                raise ValueError(
                    f"cannot resume from {path} (step {state['step']}): {self.checkpoints.directory} holds newer "
                    f"readable checkpoints ({', '.join(p.name for p in newer)}); resume from the newest, or continue "
                    "in another run directory"
                )
            if self.rank == 0:
                for bad in damaged:
                    set_aside(bad)
        load_state_checked(self.model, state["model"], what="model", differences=diffs)
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state["grad_scaler"] is not None:
            self.scaler.load_state_dict(state["grad_scaler"])
        self.order.load_state_dict(state["data_order"])
        if state.get("objective") is not None and hasattr(self.config.objective, "load_state_dict"):
            self.config.objective.load_state_dict(state["objective"])
        set_rng_state(state["rng"], {"noise": self.noise, "data_order": self.order.generator})
        self.step = int(state["step"])
        if self.rank == 0 and self.metrics_path is not None and self.metrics_path.exists():
            lines = self.metrics_path.read_text().splitlines()
            kept = [ln for ln in lines if json.loads(ln).get("step", 0) <= self.step]
            self.metrics_path.write_text("".join(ln + "\n" for ln in kept))

    def save_checkpoint(self) -> Path | None:
        """Write the state at this step (rank 0); a failed write names the file, the step and the way back."""
        if self.rank != 0 or self.checkpoints is None:
            return None
        try:
            return self.checkpoints.save(self.state_dict())
        except CheckpointWriteError as err:
            last = self.checkpoints.latest()
            back = "no checkpoint was written before: start again"
            if last:
                back = (f"the newest complete checkpoint is {last}: free space, then continue from it with "
                        f"resume=true hydra.run.dir={self.run_dir}")  # fmt: skip
            raise CheckpointWriteError(f"{err} (step {self.step}); training stopped, {back}") from err

    # ------------------------------------------------------------------------------------------ loop
    def _train_step(self) -> tuple[float, float]:
        cfg = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr_at(self.step + 1)
        idx = self.order.next_indices().to(self.device)
        x0, y = self.data[idx], None
        if self.labels is not None:
            y = drop_labels(self.labels[idx], cfg.label_dropout, self.model.num_classes, self.noise)
        if self.transform is not None:
            x0 = self.transform(x0, generator=self.noise)
        autocast = PRECISIONS[cfg.precision]
        ctx = torch.autocast("cuda", dtype=autocast) if autocast is not None else contextlib.nullcontext()
        with ctx:
            loss = self.module(x0, self.noise, y).float()
        reported = loss.detach().clone()
        if self.world > 1:
            dist.all_reduce(reported)
            reported /= self.world
        if not torch.isfinite(reported):
            raise NonFiniteLossError(self._nonfinite_message("loss", float(reported)))
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        clip = cfg.grad_clip if cfg.grad_clip is not None else math.inf
        grad_norm = float(nn.utils.clip_grad_norm_([*self.model.parameters(), *self.objective_params], clip))
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skips the step on inf/NaN gradients and lowers the scale
            self.scaler.update()
        elif not math.isfinite(grad_norm):
            raise NonFiniteLossError(self._nonfinite_message("gradient norm", grad_norm))
        else:
            self.optimizer.step()
        self.ema.update(self.model)
        self.step += 1
        return float(reported), grad_norm

    def _nonfinite_message(self, what: str, value: float) -> str:
        last = self.checkpoints.latest() if self.checkpoints else None
        kept = f"the last good checkpoint is {last}" if last else "no checkpoint had been written yet"
        return f"the {what} became non-finite ({value}) at step {self.step + 1}; training stopped, {kept}"

    def _log(self, record: dict[str, Any]) -> None:
        if self.rank != 0:
            return
        if self.metrics_path is not None:
            with self.metrics_path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        for callback in self.callbacks:
            callback.on_log(self, record)

    def _snapshot(self) -> None:
        if self.rank == 0 and self.snapshot is not None:
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                self.snapshot(self.ema.model, self.step)

    def _stop_requested(self, local: bool) -> bool:
        """Whether any rank was asked to stop (SIGINT/SIGTERM), so that all ranks stop after the same step."""
        if self.world == 1:
            return local
        flag = torch.tensor([float(local)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def fit(self) -> TrainResult:
        """Run from the current step to ``config.steps``; returns the final figures.

        Raises:
            TrainingInterrupted: on SIGINT/SIGTERM, after finishing the current step and saving a checkpoint of it.
        """
        cfg = self.config
        if self.run_dir is not None and self.rank == 0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not self.progress or self.rank != 0, mininterval=1.0)
        start, start_step = time.perf_counter(), self.step
        window_loss, window_n, window_t, loss, loss_steps = 0.0, 0, time.perf_counter(), float("nan"), 0
        self.model.train()
        last_ckpt = self.checkpoints.latest() if self.checkpoints else None
        try:
            with deferred_interrupt() as stop:
                while self.step < cfg.steps:
                    if self._stop_requested(stop.requested):
                        saved = last_ckpt if last_ckpt and last_ckpt.name == f"ckpt_{self.step:08d}.pt" else None
                        raise TrainingInterrupted(self.step, saved or self.save_checkpoint())
                    step_loss, grad_norm = self._train_step()
                    window_loss, window_n = window_loss + step_loss, window_n + 1
                    bar.update(1)
                    if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                        now = time.perf_counter()
                        rate = window_n / max(now - window_t, 1e-9)
                        record = {"step": self.step, "loss": window_loss / window_n, "lr": cfg.lr_at(self.step),
                                  "grad_norm": grad_norm, "steps_per_s": rate, "elapsed_s": now - start}  # fmt: skip
                        self._log(record)
                        bar.set_postfix(loss=f"{record['loss']:.4g}", refresh=False)
                        loss, loss_steps = record["loss"], window_n
                        window_loss, window_n, window_t = 0.0, 0, now
                    if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                        last_ckpt = self.save_checkpoint()
                    if cfg.sample_every and self.step % cfg.sample_every == 0 and self.step != cfg.steps:
                        self._snapshot()
                if self._stop_requested(stop.requested):  # in the last step: its checkpoint is written already
                    raise TrainingInterrupted(self.step, last_ckpt)
        finally:
            bar.close()
        wall = time.perf_counter() - start
        self._snapshot()
        rate = (self.step - start_step) / max(wall, 1e-9)
        deviation = replica_deviation(self.model)
        result = TrainResult(self.step, loss, rate, wall, last_ckpt, replica_deviation=deviation,
                             steps_run=self.step - start_step, loss_steps=loss_steps)  # fmt: skip
        if self.rank == 0:
            for callback in self.callbacks:
                callback.on_fit_end(self, result)
        return result
