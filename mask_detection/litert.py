"""LiteRT (TensorFlow Lite) backend: a ``.tflite`` classifier implementing ``interfaces.Classifier``, and the
converted backbone that training runs.

Imports ``ai_edge_litert`` only, never TensorFlow, so a user who runs an exported model starts in well under a
second instead of the 4-6 s that ``import tensorflow`` costs.
"""

import os
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from ._tf import silence_stderr
from .crop import metadata_crop
from .errors import ModelError, exception_line
from .fileio import display_path


def default_threads() -> int:
    """The number of cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def load_interpreter(content: bytes, threads: int, what: str) -> Interpreter:
    """A LiteRT interpreter for TFLite flatbuffer bytes, its one 4-D input set to batch 1 and tensors allocated.

    Raises ModelError naming ``what`` when LiteRT cannot load it.
    """
    try:
        # LiteRT prints an INFO line about its XNNPACK delegate straight to fd 2; errors still raise.
        with silence_stderr():
            interpreter = Interpreter(model_content=content, num_threads=threads)
            detail = interpreter.get_input_details()
            if len(detail) == 1 and len(detail[0]["shape"]) == 4 and int(detail[0]["shape"][0]) != 1:
                interpreter.resize_tensor_input(detail[0]["index"], [1, *detail[0]["shape"][1:]], strict=True)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError, IndexError) as exc:
        raise ModelError(f"cannot load {what}: {exception_line(exc)}") from None
    return interpreter


def tflite_problem(content: bytes) -> str | None:
    """Why ``content`` is not a TFLite model (empty, another kind of file, damaged), or None when LiteRT reads it.

    Only for messages: it builds an interpreter, so it is called once loading has already failed or a model's
    metadata is missing and the message must say which of the two files is at fault.
    """
    if not content:
        return "empty file"
    try:
        with silence_stderr():
            Interpreter(model_content=content, num_threads=1)
    except (ValueError, RuntimeError, IndexError) as exc:
        # A TFLite flatbuffer carries "TFL3" at bytes 4-8: without it the file is something else entirely.
        return exception_line(exc) if content[4:8] == b"TFL3" else "not a TFLite flatbuffer"
    return None


def not_a_tflite_model(shown: str, problem: str) -> ModelError:
    return ModelError(f"cannot load model {shown}: the file is damaged or not a TFLite model ({problem})")


class LiteRTFunction:
    """A converted float model run image by image: uint8 batch (N, H, W, 3) in, stacked float32 outputs out.

    Training uses it for the frozen backbone: XNNPACK runs a batch-1 float32 graph 1.6-3x faster than
    TensorFlow's batched call on 2 cores (ResNet50 about 55 against 100 ms per image, EfficientNet-Lite0 about
    10 against 30), with the same numbers to about 1e-6.
    """

    def __init__(self, content: bytes, threads: int | None = None, what: str = "converted model"):
        threads = default_threads() if threads is None else int(threads)
        self._interpreter = load_interpreter(content, threads, what)
        (inp,), (out,) = self._interpreter.get_input_details(), self._interpreter.get_output_details()
        self._input_index, self._output_index = inp["index"], out["index"]
        self._input_dtype = np.dtype(inp["dtype"])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        interpreter = self._interpreter
        outputs = []
        for image in np.asarray(batch):
            interpreter.set_tensor(self._input_index, image[None].astype(self._input_dtype, copy=False))
            interpreter.invoke()  # releases the GIL while XNNPACK runs
            outputs.append(interpreter.get_tensor(self._output_index)[0].copy())
        return np.stack(outputs).astype(np.float32, copy=False)


class LiteRTClassifier:
    """A ``.tflite`` classifier: uint8 RGB batch (N, S, S, 3) in, float32 model outputs (N, C) out.

    Float, float16, dynamic-range and full-integer models are handled alike: quantised input and output tensors
    are converted with their own scale and zero point. ``metadata``: the JSON beside the model (its
    ``class_names``); ``input_size``: the side S its metadata gives.

    A batch runs face by face through one batch-1 interpreter: measured on 2 cores (ResNet50, 3 and 8 faces),
    a resized batch interpreter was no faster per face, and resizing costs about two inferences whenever the
    number of faces changes, plus one tensor arena and packed-weight copy per cached size.
    """

    backend = "litert"

    def __init__(self, path: Path, metadata: dict, input_size: int, threads: int | None = None):
        self.path = Path(path)
        self._shown = display_path(self.path)  # printable whatever bytes the name holds
        self.metadata = metadata
        self.class_names = list(metadata["class_names"])
        self.input_size = int(input_size)
        self.crop = metadata_crop(metadata)
        self.threads = default_threads() if threads is None else int(threads)
        if self.threads < 1:
            raise ModelError(f"threads must be at least 1, got {threads}")
        if not self.path.is_file():
            raise ModelError(f"model file {self._shown} does not exist")
        try:
            content = self.path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read model {self._shown}: {exc.strerror or exc}") from None
        try:
            self._interpreter = load_interpreter(content, self.threads, f"model {self._shown}")
        except ModelError:
            problem = tflite_problem(content)
            if problem is not None:
                raise not_a_tflite_model(self._shown, problem) from None
            raise  # a valid model LiteRT cannot run (an unsupported op): its own message says why
        inp, out = self._interpreter.get_input_details(), self._interpreter.get_output_details()
        if len(inp) != 1 or len(out) != 1:
            raise ModelError(
                f"model {self._shown} has {len(inp)} inputs and {len(out)} outputs; "
                "expected one image input and one probability output"
            )
        inp, out = inp[0], out[0]
        shape = tuple(int(s) for s in inp["shape_signature"])
        if len(shape) != 4 or shape[1:] != (self.input_size, self.input_size, 3):
            raise ModelError(
                f"model {self._shown} takes input of shape {shape}, expected "
                f"(N, {self.input_size}, {self.input_size}, 3) as its metadata says"
            )
        self._input_index, self._output_index = inp["index"], out["index"]
        self.input_dtype = np.dtype(inp["dtype"])
        self.output_dtype = np.dtype(out["dtype"])
        try:
            self._in_quant = _quantization(inp)
            self._out_quant = _quantization(out)
        except ValueError as exc:
            raise ModelError(f"model {self._shown}: {exc}") from None
        if self.input_dtype.kind in "iu" and self._in_quant is None and self.input_dtype != np.uint8:
            raise ModelError(
                f"model {self._shown} takes unquantised {self.input_dtype} input; expected uint8, "
                "float or a quantised integer type"
            )

    def _to_input(self, batch: np.ndarray) -> np.ndarray:
        dtype = self.input_dtype
        if dtype.kind == "f":
            return batch.astype(dtype)
        if self._in_quant is None:  # plain uint8 input: the model converts it itself
            return batch
        scale, zero_point = self._in_quant
        info = np.iinfo(dtype)
        q = np.round(batch.astype(np.float32) / scale + zero_point)
        return np.clip(q, info.min, info.max).astype(dtype)

    def _from_output(self, raw: np.ndarray) -> np.ndarray:
        if self._out_quant is not None and raw.dtype.kind in "iu":
            scale, zero_point = self._out_quant
            return ((raw.astype(np.float32) - zero_point) * scale).astype(np.float32)
        return raw.astype(np.float32, copy=False)

    def _run_one(self, image: np.ndarray) -> np.ndarray:
        self._interpreter.set_tensor(self._input_index, self._to_input(image[None]))
        self._interpreter.invoke()
        return self._from_output(self._interpreter.get_tensor(self._output_index))[0]

    def predict(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch, dtype=np.uint8)
        if len(batch) == 0:
            return np.zeros((0, len(self.class_names)), np.float32)
        if batch.shape[1:] != (self.input_size, self.input_size, 3):
            raise ModelError(
                f"model {self._shown} expects images of {self.input_size}x{self.input_size}x3, got {batch.shape[1:]}"
            )
        return np.stack([self._run_one(image) for image in batch]).astype(np.float32, copy=False)


def _quantization(detail: dict) -> tuple[float, int] | None:
    """(scale, zero_point) of a quantised tensor, or None."""
    params = detail.get("quantization_parameters") or {}
    scales = np.asarray(params.get("scales", []), np.float32)
    zero_points = np.asarray(params.get("zero_points", []))
    if scales.size == 0:
        scale, zero_point = detail.get("quantization", (0.0, 0))
        return (float(scale), int(zero_point)) if scale else None
    if scales.size != 1:
        raise ValueError("per-channel quantised input or output tensors are not supported")
    return float(scales[0]), int(zero_points[0]) if zero_points.size else 0
