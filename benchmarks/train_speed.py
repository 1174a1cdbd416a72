#!/usr/bin/env python3
"""Training speed: cached backbone features + head epochs versus end-to-end epochs through the frozen backbone.

For N images and a backbone it measures the feature pass (once per image; in TensorFlow and through the LiteRT
conversion that train_model.py uses on real datasets), one head epoch on cached features, and one real end-to-end
epoch (uint8 images through the frozen backbone and the head, as a classic script trains), and
prints both per-epoch costs, their ratio, and the projected time for the requested epochs.

    python benchmarks/train_speed.py --backbone efficientnet_lite0 --images 256
    python benchmarks/train_speed.py --backbone resnet50 --random-weights --images 256
"""

import argparse
import time

import numpy as np


def main():
    from mask_detection.backbones import BACKBONES

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="efficientnet_lite0", choices=BACKBONES)
    p.add_argument("--random-weights", action="store_true", help="random backbone weights (no download)")
    p.add_argument("--data", help="arrays file from loader.py (default: random images)")
    p.add_argument("--images", type=int, default=256, help="images to time (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=100, help="epochs for the projection (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args()

    from mask_detection._tf import keras, tf
    from mask_detection.model import (
        apply_layers,
        build_classifier,
        build_feature_extractor,
        build_head_layers,
        compile_model,
    )

    k, t = keras(), tf()
    if args.data:
        from mask_detection.arrays import load_arrays

        arrays = load_arrays(args.data)
        images = arrays["images"][: args.images]
        total_images = len(arrays["labels"])
    else:
        images = np.random.default_rng(0).integers(0, 256, (args.images, 224, 224, 3), dtype=np.uint8)
        total_images = None
    n = len(images)
    labels = np.eye(2, dtype=np.float32)[np.arange(n) % 2]

    extractor = build_feature_extractor(args.backbone, None if args.random_weights else "imagenet")
    spec = t.TensorSpec([None, 224, 224, 3], t.uint8)
    call = t.function(lambda x: extractor(x, training=False), input_signature=[spec])
    call(images[: args.batch_size])  # trace once
    t0 = time.perf_counter()
    feats = np.concatenate([call(images[i : i + args.batch_size]).numpy() for i in range(0, n, args.batch_size)])
    feature_s = time.perf_counter() - t0

    # What train_model.py uses on real datasets: the backbone converted once and run by LiteRT.
    from mask_detection.training import HEAD_STEPS_PER_EXECUTION, feature_function

    t0 = time.perf_counter()
    fast, _ = feature_function(extractor, "litert", n, images[:4], log=lambda *a: None)
    convert_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast_feats = np.concatenate([fast(images[i : i + args.batch_size]) for i in range(0, n, args.batch_size)])
    litert_s = time.perf_counter() - t0
    max_diff = float(np.abs(fast_feats - feats).max() / max(1e-12, np.abs(feats).max()))

    head_layers = build_head_layers(2)
    inp = k.Input(shape=(feats.shape[1],))
    head = k.Model(inp, apply_layers(inp, head_layers))
    compile_model(head, 1e-3, steps_per_execution=HEAD_STEPS_PER_EXECUTION)  # as train_model.py does
    head.fit(feats, labels, epochs=1, batch_size=args.batch_size, verbose=0)  # warm-up
    t0 = time.perf_counter()
    head.fit(feats, labels, epochs=3, batch_size=args.batch_size, verbose=0)
    head_epoch_s = (time.perf_counter() - t0) / 3

    full = build_classifier(extractor, head_layers, 1e-3)
    full.fit(images[: args.batch_size], labels[: args.batch_size], epochs=1, batch_size=args.batch_size, verbose=0)
    t0 = time.perf_counter()
    full.fit(images, labels, epochs=1, batch_size=args.batch_size, verbose=0)
    e2e_epoch_s = time.perf_counter() - t0

    per_image_ms = 1000 * feature_s / n
    litert_ms = 1000 * litert_s / n
    print(
        f"backbone {args.backbone} ({'random' if args.random_weights else 'ImageNet'} weights), {n} images, "
        f"batch {args.batch_size}, {t.config.threading.get_intra_op_parallelism_threads() or 'all'} threads"
    )
    print(f"{'feature pass, TensorFlow':<34}{feature_s:9.2f} s  ({per_image_ms:.1f} ms/image, once)")
    print(
        f"{'feature pass, LiteRT (the default)':<34}{litert_s:9.2f} s  ({litert_ms:.1f} ms/image, once; "
        f"conversion and check {convert_s:.0f} s once; largest difference {max_diff:.1e} relative)"
    )
    print(f"{'head epoch on cached features':<34}{head_epoch_s:9.3f} s")
    print(f"{'end-to-end epoch (frozen backbone)':<34}{e2e_epoch_s:9.2f} s")
    print(f"{'ratio end-to-end / head epoch':<34}{e2e_epoch_s / head_epoch_s:9.0f} x")
    cached_total = convert_s + litert_s + args.epochs * head_epoch_s
    e2e_total = args.epochs * e2e_epoch_s
    print(f"{args.epochs} epochs on these {n} images: cached {cached_total:.0f} s, end-to-end {e2e_total:.0f} s")
    if total_images:
        # train_model.py also computes --augment-views views of the 70% training images.
        views = 2
        passes = total_images * (1 + 0.7 * views)
        print(
            f"projected for all {total_images} images: feature pass with {views} augmented views "
            f"{(convert_s + passes * litert_ms / 1000) / 60:.1f} min with LiteRT "
            f"({passes * per_image_ms / 60000:.1f} min with TensorFlow), then head epochs of a few seconds each; "
            f"end-to-end {args.epochs} epochs {e2e_total * total_images / n / 3600:.1f} h"
        )


if __name__ == "__main__":
    main()
