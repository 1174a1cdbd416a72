#!/usr/bin/env python3
"""Training again after adding pictures: what the per-picture feature cache saves.

From an arrays file (loader.py's output, e.g. the reference set) it holds back --new pictures, runs
`train_model.py` on the rest with an empty feature cache, then runs it again on all the pictures with that cache
(the split moves, the --new pictures are new), and prints the wall time of both runs (whole processes, Python and
TensorFlow start-up included) with the stages from each model's JSON.

    python loader.py --dataset ../shared/datasets/face-mask --out /tmp/arrays.npz
    python benchmarks/train_cache.py --data /tmp/arrays.npz --backbone efficientnet_lite0
    python benchmarks/train_cache.py --data /tmp/arrays.npz --backbone resnet50 --weights resnet50.weights.h5
    python benchmarks/train_cache.py --data /tmp/arrays.npz --backbone resnet50 --make-random-resnet50-weights

Random ResNet50 weights from a file (--make-random-resnet50-weights, for machines without the ImageNet download)
cost the same per picture as the real ones, but the head may train for another number of epochs.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def subset(arrays: dict, indices: np.ndarray) -> dict:
    per_picture = {"images", "labels", "paths", "hashes", "sources"}
    return {key: value[indices] if key in per_picture else value for key, value in arrays.items()}


def make_random_resnet50_weights(path: Path) -> Path:
    from mask_detection._tf import keras

    model = keras().applications.ResNet50(include_top=False, weights=None, input_shape=(224, 224, 3))
    model.save_weights(path)
    return path


def timed_run(args: list[str], log: Path) -> float:
    started = time.perf_counter()
    with open(log, "w") as out:
        result = subprocess.run([sys.executable, str(REPO / "train_model.py"), *args], stdout=out, stderr=out)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"train_model.py failed ({result.returncode}); see {log}")
    return seconds


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:04.1f} s"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="arrays file made by loader.py")
    p.add_argument("--backbone", default="efficientnet_lite0", choices=("resnet50", "efficientnet_lite0"))
    p.add_argument("--weights", help="backbone weights file, passed to train_model.py")
    p.add_argument(
        "--make-random-resnet50-weights",
        action="store_true",
        help="save a randomly initialised ResNet50 (no top) with save_weights and train with it",
    )
    p.add_argument("--new", type=int, default=100, help="pictures added for the second run (default: %(default)s)")
    p.add_argument("--work", help="folder for the arrays, cache, models and logs (default: a temporary one)")
    args = p.parse_args()

    from mask_detection.arrays import load_arrays, save_arrays

    work = Path(args.work or tempfile.mkdtemp(prefix="train_cache_"))
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "cache"
    if cache.exists() and any(cache.iterdir()):
        sys.exit(f"{cache} is not empty: the first run needs an empty cache")
    arrays = load_arrays(args.data)
    n = len(arrays["labels"])
    added = np.sort(np.random.default_rng(0).choice(n, size=args.new, replace=False))
    before = np.setdiff1d(np.arange(n), added)
    save_arrays(work / "before.npz", subset(arrays, before))
    del arrays

    weights = args.weights
    if args.make_random_resnet50_weights:
        weights = str(make_random_resnet50_weights(work / "resnet50_random.weights.h5"))
    common = ["--backbone", args.backbone, "--cache-dir", str(cache), "--quiet"]
    if weights:
        common += ["--weights", weights]

    times, metas = [], []
    for name, data in (("before", work / "before.npz"), ("after", Path(args.data))):
        out = work / f"{name}.keras"
        times.append(timed_run(["--data", str(data), "--out", str(out), *common], work / f"{name}.log"))
        metas.append(json.loads(out.with_suffix(".json").read_text()))

    print(f"{args.backbone}, weights {metas[0]['weights']}; {len(before)} pictures, then {n} ({args.new} new)")
    for label, seconds, meta in zip(
        ("first run, empty cache", f"second run, {args.new} new"), times, metas, strict=True
    ):
        stages = meta["timing_seconds"]
        print(
            f"{label:<24} {minutes(seconds):>14}  (features {stages['features']} s: {meta['features_from']}; "
            f"head {stages['head_training']} s, {meta['epochs']['run']} epochs; train() {stages['total']} s)"
        )
    size = sum(f.stat().st_size for f in cache.iterdir()) / 1e6
    print(f"cache: {size:.0f} MB in {cache}; logs and models in {work}")


if __name__ == "__main__":
    main()
