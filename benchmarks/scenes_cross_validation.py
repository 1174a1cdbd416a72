#!/usr/bin/env python3
"""Cross-validation over annotated scene photos: the classifier on real scene faces it was not trained on.

scenes-dev has only 52 bare faces of 32 px and more, so one face moves its figure by 2 points. This measures the
same thing on a scenes folder used for training, without training on the faces it scores. The photos of --scenes
are split into --folds groups (by photo: all faces of a photo are on the same side). For each group, the arrays
file made by loader.py (class folders plus --scenes) minus that group's face crops trains a classifier with
train_model.py's recipe and defaults (after the first group the backbone features come from the per-picture cache);
then the whole default pipeline (face detector, crop rule, classifier) runs on the group's photos. The held-out
faces of all groups are scored together by evaluate.py's scoring (IoU 0.3, found faces, per size).

    python loader.py --dataset ../shared/datasets/face-mask --scenes ../shared/datasets/scenes-train \\
        --out /tmp/cv/arrays.npz
    python benchmarks/scenes_cross_validation.py --arrays /tmp/cv/arrays.npz \\
        --scenes ../shared/datasets/scenes-train --work /tmp/cv

The models are the float .keras files (the shipped model is their int8 export: within a fraction of a point).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--arrays", required=True, help="arrays file from loader.py with --scenes SCENES (one scenes source)"
    )
    p.add_argument("--scenes", required=True, help="the scenes folder given to loader.py (images/, annotations/)")
    p.add_argument("--work", required=True, help="folder for the per-fold arrays, models and held-out photo links")
    p.add_argument("--folds", type=int, default=5, help="number of photo groups (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the photo grouping (default: %(default)s)")
    p.add_argument(
        "--train-seed",
        type=int,
        default=42,
        help="seed of each fold's training split and head (train_model.py --seed; default: %(default)s)",
    )
    p.add_argument("--backbone", default="efficientnet_lite0", help="backbone (default: %(default)s)")
    p.add_argument("--cache-dir", help="feature cache folder (default: the user cache)")
    args = p.parse_args()

    from sklearn.model_selection import KFold

    from mask_detection.annotations.scene_set import load_scene_set
    from mask_detection.arrays import load_arrays, save_arrays
    from mask_detection.evaluation.scenes import run_scenes
    from mask_detection.evaluation.scoring import score_scenes
    from mask_detection.pipeline import load_pipeline
    from mask_detection.training import TrainConfig, train

    scenes = Path(args.scenes).resolve()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    arrays = load_arrays(args.arrays)
    sources = arrays.get("sources")
    scene_sources = sorted({s for s in (sources if sources is not None else []) if s.startswith("scenes:")})
    if len(scene_sources) != 1:
        sys.exit(f"error: {args.arrays} must hold the crops of exactly one scenes folder, has {scene_sources}")
    photos = sorted(load_scene_set(scenes).items, key=lambda item: item[1].name)
    photo_key = [str(image.relative_to(scenes)).replace(os.sep, "/") for _, image in photos]
    crop_photo = np.array([path.split("#", 1)[0] for path in arrays["paths"]])
    is_scene = sources == scene_sources[0]

    results, class_names, started = [], None, time.perf_counter()
    folds = KFold(n_splits=args.folds, shuffle=True, random_state=args.seed).split(photos)
    for fold, (_, held_idx) in enumerate(folds):
        folder = work / f"fold-{fold}"
        held = {photo_key[i] for i in held_idx}
        keep = ~(is_scene & np.isin(crop_photo, list(held)))
        print(
            f"fold {fold + 1}/{args.folds}: {len(held)} photos held out, {int((~keep).sum())} crops left out of "
            f"training",
            flush=True,
        )
        fold_arrays = folder / "arrays.npz"
        folder.mkdir(exist_ok=True)
        save_arrays(
            fold_arrays,
            {key: value[keep] if value.ndim else value for key, value in arrays.items() if key != "class_names"}
            | {"class_names": arrays["class_names"]},
        )
        model = folder / "model.keras"
        config = TrainConfig(
            data=str(fold_arrays),
            backbone=args.backbone,
            out=str(model),
            seed=args.train_seed,
            cache_dir=args.cache_dir,
            progress=True,
        )
        meta = train(config, log=print, warn=lambda m: print("warning:", m)).metadata
        fold_arrays.unlink()  # as large as the input arrays; the model is what is kept
        print(f"  trained in {meta['timing_seconds']['total']} s; features {meta['features_from']}", flush=True)
        held_dir = folder / "held-out"
        for sub in ("images", "annotations"):
            (held_dir / sub).mkdir(parents=True, exist_ok=True)
        for i in held_idx:
            annotation, image = photos[i]
            for source, sub in ((image, "images"), (annotation.xml_path, "annotations")):
                link = held_dir / sub / source.name
                if not link.is_symlink():
                    link.symlink_to(source.resolve())
        pipeline = load_pipeline(str(model))
        class_names = pipeline.class_names
        results.extend(run_scenes(pipeline, load_scene_set(held_dir)).results)

    scores = score_scenes(results, class_names, 0.3)
    classifier, headline = scores.classifier, scores.headline
    print(
        f"\n{len(results)} held-out photos, {classifier['faces']} found faces scored "
        f"({time.perf_counter() - started:.0f} s)"
    )
    print(f"{'size':>8} {'faces':>6} {'balanced acc':>13} {'violations caught':>18} {'ECE':>6}")
    rows = dict(classifier["by_size"]) | {"all": classifier}
    for name, row in rows.items():
        caught = f"{row['without_mask_caught']}/{row['without_mask_found']}"
        print(f"{name:>8} {row['faces']:>6} {100 * row['balanced_accuracy']:>12.1f}% {caught:>18} {row['ece']:>6.3f}")
    print(
        f"   >=32 px: balanced accuracy {100 * headline['balanced_accuracy']:.1f}%, violations caught "
        f"{headline['without_mask_caught']}/{headline['without_mask_found']}, masks recognised "
        f"{headline['with_mask_recognised']}/{headline['with_mask_found']}"
    )
    (work / "cross_validation.json").write_text(
        json.dumps(
            {
                "folds": args.folds,
                "seed": args.seed,
                "train_seed": args.train_seed,
                "classifier": classifier,
                "headline": headline,
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
