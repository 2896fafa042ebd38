#!/usr/bin/env bash
# The Fashion-MNIST benchmark end to end: FID classifier (if not cached), training with test bits/dim beside the
# baselines and sample grids, then classifier-feature FID beside the held-out floor (benchmarks/fid_sweep.py: the
# paper's ancestral sampler and two fast solvers at 10 and 20 NFE) and beside the baselines' samples.
#   benchmarks/fashion_mnist.sh cpu [OUT]     # conf/benchmark/fashion_mnist_cpu.yaml, 2 CPU cores
#   benchmarks/fashion_mnist.sh gpu [OUT]     # conf/benchmark/fashion_mnist_gpu.yaml, one GPU
# Needs the Fashion-MNIST IDX files (apt-get install dataset-fashion-mnist, or data.dataset.root=DIR).
set -euo pipefail
kind=${1:-cpu}
out=${2:-benchmarks/results/fashion_mnist_${kind}}
py=${PYTHON:-python}
case "$kind" in
  cpu) device=cpu; epochs=6; n=1000; batch=250; steps=100 ;;
  gpu) device=cuda; epochs=20; n=10000; batch=1000; steps=100,1000 ;;
  *) echo "usage: $0 cpu|gpu [OUT]" >&2; exit 2 ;;
esac
cache=${SCORESDE_CACHE:-$HOME/.cache/scoresde}
if [ ! -f "$cache/classifiers/fashion_mnist.pt" ]; then
  $py -m scoresde.metrics.train_classifier data=fashion_mnist device=$device classifier.epochs=$epochs
fi
start=$(date +%s)
$py -m scoresde.train +benchmark=fashion_mnist_${kind} hydra.run.dir="$out/run"
fid="ckpt=$out/run out_dir=$out/fid num_samples=$n batch_size=$batch device=$device"
# shellcheck disable=SC2086
$py benchmarks/fid_sweep.py -m $fid solver=ancestral steps=$steps
# shellcheck disable=SC2086
$py benchmarks/fid_sweep.py -m $fid solver=unipc,dpmpp_2m_sde nfe=10,20
PYTHONPATH=. $py benchmarks/fid_baselines.py --ckpt "$out/run" --n $n --out "$out/fid"
echo "fashion_mnist $kind: $(( $(date +%s) - start )) s; $out/run/summary.json, $out/fid/fid_sweep.md"
