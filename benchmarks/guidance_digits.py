"""Class-conditional digits: classifier guidance of the default model and classifier-free guidance of a
label-conditional one, scored by the share of samples the clean digits classifier assigns to the requested class and
by FID.

    python benchmarks/guidance_digits.py --uncond VP_RUN --classifier NOISY_CLASSIFIER_RUN \
        --cfg CFG_RUN --out benchmarks/results/guidance_digits

Each point (model, guidance, scale) draws ``--n`` samples, n / 10 per class, with the ancestral sampler and a fixed
seed, and writes ``points/<name>.json`` (+ ``.pt`` samples) as it finishes; a rerun skips finished points. Then
``guidance_digits.{csv,md}``, one grid per point (a row per class) and the noisy classifier's accuracy table are
written to the output directory. FID uses the project's digits classifier features against the training split,
at n = 297 (the held-out test split's size, the floor).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from pathlib import Path

import torch

import scoresde
from scoresde.cli.plotting import save_image_grid
from scoresde.conditioning import classifier_free_guidance, classifier_guidance
from scoresde.conditioning.noisy_classifier import load_noisy_classifier
from scoresde.metrics.classifier import load_classifier, train_classifier
from scoresde.metrics.features import extractor_for
from scoresde.metrics.quality import SampleEvaluator


def _clean_classifier(dataset, cache):
    try:
        return load_classifier(dataset.name, cache)
    except FileNotFoundError:
        train_classifier(dataset, save_root=cache, log=lambda s: None)
        return load_classifier(dataset.name, cache)


def _points(args) -> list[dict]:
    points = []
    if args.uncond:
        points.append({"name": "uncond_unguided", "model": "unconditional", "guidance": "none", "scale": 0.0})
        for w in args.cg_scales:
            points.append({"name": f"uncond_classifier_w{w:g}", "model": "unconditional", "guidance": "classifier",
                           "scale": w})  # fmt: skip
    if args.cfg:
        points.append({"name": "cfg_null_label", "model": "label-conditional", "guidance": "null label", "scale": 0.0})
        for w in args.cfg_scales:
            points.append({"name": f"cfg_w{w:g}", "model": "label-conditional", "guidance": "classifier-free",
                           "scale": w})  # fmt: skip
    return points


def _score_fn(point, models, y):
    if point["guidance"] == "none":
        return models["unconditional"].score_fn
    if point["guidance"] == "classifier":
        return classifier_guidance(models["unconditional"].score_fn, models["noisy_classifier"], y, point["scale"])
    if point["guidance"] == "null label":
        return models["label-conditional"].score_fn  # y=None: the null label, the unconditional score
    return classifier_free_guidance(models["label-conditional"].score_fn, y, point["scale"])


def run_point(point, models, evaluator, clean, args) -> dict:
    path = args.out / "points" / f"{point['name']}.json"
    if path.exists():
        return json.loads(path.read_text())
    k = evaluator.dataset.num_classes
    y = torch.arange(k).repeat_interleave(args.n // k)
    ckpt = models[point["model"]]
    gen = torch.Generator().manual_seed(args.seed)
    x, info = scoresde.sample(ckpt.sde, _score_fn(point, models, y), (y.numel(), *ckpt.event_shape),
                              solver="ancestral", steps=args.steps, generator=gen)  # fmt: skip
    x = x.clamp(-1, 1)
    with torch.no_grad():
        pred = clean(x).argmax(1)
    per_class = [float((pred[y == c] == c).double().mean()) for c in range(k)]
    floor = evaluator.floor(None)
    scores = evaluator.evaluate(x, matched_n=floor.n)
    fid = scores.fid_matched if scores.fid_matched is not None else scores.fid  # FID at the floor's n (or at n < it)
    record = {**point, "n": y.numel(), "steps": args.steps, "nfe": info.nfe, "wall_time": round(info.wall_time, 1),
              "share_requested_class": float((pred == y).double().mean()), "share_min_class": min(per_class),
              "share_by_class": per_class, "fid": scores.fid, "fid_matched": fid,
              "floor_fid": floor.fid, "floor_n": floor.n, "classifier_score": scores.score,
              "threads": torch.get_num_threads(), "load_avg_1min": os.getloadavg()[0],
              "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
              "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(x.to(torch.float16), path.with_suffix(".pt"))
    grid = x.reshape(k, args.n // k, *x.shape[1:])[:, : args.grid_cols].flatten(0, 1)
    title = f"{point['name']}: share {record['share_requested_class']:.3f}, FID {fid:.2f}"
    save_image_grid(grid, args.out / f"{point['name']}.png", nrow=args.grid_cols, title=title)
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{point['name']}: share {record['share_requested_class']:.3f} (min class {min(per_class):.2f}), "
          f"FID@{floor.n} {fid:.2f} (floor {floor.fid:.2f}), {info.nfe} NFE, {info.wall_time:.0f} s",
          flush=True)  # fmt: skip
    return record


def write_tables(records, out: Path) -> None:
    keys = ["name", "model", "guidance", "scale", "share_requested_class", "share_min_class", "fid_matched",
            "floor_fid", "classifier_score", "nfe", "wall_time", "n", "load_avg_1min"]  # fmt: skip
    with (out / "guidance_digits.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)
    lines = ["| model | guidance | scale | share of samples in the requested class | worst class | "
             f"FID at n={records[0]['floor_n']} (floor {records[0]['floor_fid']:.2f}) | NFE | wall (s) |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in records:
        lines.append(f"| {r['model']} | {r['guidance']} | {r['scale']:g} | {r['share_requested_class']:.3f} | "
                     f"{r['share_min_class']:.2f} | {r['fid_matched']:.2f} | {r['nfe']} | "
                     f"{r['wall_time']:.0f} |")  # fmt: skip
    (out / "guidance_digits.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uncond", type=Path, help="run directory of an unconditional digits model")
    parser.add_argument("--classifier", type=Path, help="noisy classifier directory (scoresde.train_noisy_classifier)")
    parser.add_argument("--cfg", type=Path, help="run directory of a label-conditional model (label dropout)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/guidance_digits"))
    parser.add_argument("--cg-scales", type=float, nargs="*", default=[1.0, 3.0])
    parser.add_argument("--cfg-scales", type=float, nargs="*", default=[0.0, 1.0, 3.0])
    parser.add_argument("--n", type=int, default=500, help="samples per point (n / K per class)")
    parser.add_argument("--steps", type=int, default=100, help="ancestral sampler steps")
    parser.add_argument("--grid-cols", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=None, help="metrics cache (clean classifier, reference stats)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    models = {}
    if args.uncond:
        models["unconditional"] = scoresde.load_checkpoint(args.uncond)
        if not args.classifier:
            parser.error("--uncond needs --classifier (the noisy classifier that guides it)")
        models["noisy_classifier"] = load_noisy_classifier(args.classifier)
        record = models["noisy_classifier"].record
        (args.out / "noisy_classifier_accuracy.json").write_text(json.dumps(record["report"], indent=2) + "\n")
        from scoresde.conditioning.noisy_classifier import NoisyClassifierReport

        (args.out / "noisy_classifier_accuracy.md").write_text(NoisyClassifierReport(**record["report"]).table() + "\n")
    if args.cfg:
        models["label-conditional"] = scoresde.load_checkpoint(args.cfg)
    dataset = next(m for m in models.values() if hasattr(m, "load_dataset")).load_dataset()
    clean, info = _clean_classifier(dataset, args.cache)
    print(f"clean digits classifier: test accuracy {info.test_accuracy:.4f}", flush=True)
    evaluator = SampleEvaluator(dataset, extractor_for(dataset, "classifier", cache_root=args.cache),
                                cache_root=args.cache)  # fmt: skip
    records = [run_point(p, models, evaluator, clean, args) for p in _points(args)]
    write_tables(records, args.out)
    print((args.out / "guidance_digits.md").read_text())


if __name__ == "__main__":
    main()
