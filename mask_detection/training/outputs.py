"""A model's five files (model, metadata, split record, two plots): their paths, checked before the slow part;
the full model, assembled and checked against the head; all five written as one group (all replaced, or none)."""

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MaskDetectionError, OutputError
from ..fileio import atomic_paths, check_writable, display_path, refuse_overwriting_inputs
from ..interrupts import StopFlag
from ..metrics import plot_confusion_matrix, plot_history
from ..model import build_classifier, metadata_path
from .config import TrainConfig
from .head import HeadFit
from .scores import HeldOutScore


def check_output_path(out: Path | str) -> Path:
    out = Path(out)
    if out.suffix != ".keras":
        raise MaskDetectionError(
            f"the model file {display_path(out)} must have a name ending in .keras (Keras 3 format)"
        )
    if out.exists() and out.is_dir():
        raise MaskDetectionError(f"the model file {display_path(out)} is a folder; give a file name ending in .keras")
    return out


def check_outputs(config: TrainConfig) -> dict[str, Path]:
    """The five output paths, checked before any slow work: writable, and none of them an input of the run."""
    paths = output_paths(check_output_path(config.out))
    inputs: list[str | os.PathLike] = [config.data]
    if isinstance(config.weights, (str, os.PathLike)) and os.fspath(config.weights) != "imagenet":
        inputs.append(config.weights)
    refuse_overwriting_inputs(paths.values(), inputs)
    for path in paths.values():
        check_writable(path)
    return paths


def output_paths(out: Path | str) -> dict[str, Path]:
    out = Path(out)
    return {
        "model": out,
        "metadata": metadata_path(out),
        "split": out.with_name(out.stem + "_split.json"),
        "history_plot": out.with_name(out.stem + "_training.png"),
        "confusion_plot": out.with_name(out.stem + "_confusion.png"),
    }


def save_outputs(
    paths: dict[str, Path],
    write: Callable[[Callable[[str], Path]], None],
    on_saved: Callable[[dict[str, Path]], None] | None = None,
) -> None:
    """Write the model's five files as one group: all replaced together, or none (every old file kept).

    ``write(target)`` writes each file to ``target(role)``, a temporary path. A failure (disk full, an
    interrupt) removes the temporaries; the plots and split of an old model must keep describing that model
    (the export's self-check reads its split). ``on_saved(paths)`` is called once the new files are in place,
    before any interrupt that arrived meanwhile is raised: a caller stopped right after the save still knows of it.
    """
    roles = list(paths)
    current = [paths[roles[0]]]

    def target(role):
        current[0] = paths[role]
        return tmps[role]

    stop = StopFlag()
    try:
        with contextlib.ExitStack() as deferred:
            with atomic_paths([paths[role] for role in roles]) as temporaries:
                tmps = dict(zip(roles, temporaries, strict=True))
                write(target)
                # From the last write through the renames to on_saved, a signal only sets a flag, raised below.
                # Blocking it (fileio.signals_held) holds it back from this thread alone: TensorFlow's threads
                # take it, and Python raises it here all the same, between two renames or before on_saved.
                deferred.enter_context(stop.on_signals())
            if on_saved is not None:
                on_saved(dict(paths))
    except OSError as exc:
        raise OutputError(f"cannot write {display_path(current[0])}: {exc.strerror or exc}") from None
    stop.raise_if_set()


def assemble_model(
    extractor: Any, head: HeadFit, images: np.ndarray, test: HeldOutScore, learning_rate: float, temperature: float
) -> Any:
    """The saved model: the extractor with the head's layers and the temperature on top. It must reproduce the
    calibrated head on raw images, or the features (cache included) did not come from this model."""
    model = build_classifier(extractor, head.layers, learning_rate, temperature)
    probe = test.indices[:16]
    full_probs = model(images[probe], training=False).numpy()
    if not np.allclose(full_probs, test.probabilities[: len(probe)], atol=2e-3):
        raise MaskDetectionError(
            "the assembled model does not reproduce the trained head on test images "
            "(stale feature cache?); train again without the feature cache"
        )
    return model


def write_model_files(
    paths: dict[str, Path],
    model: Any,
    metadata: dict,
    split_record: dict,
    config: TrainConfig,
    class_names: list[str],
    started: float,
    on_saved: Callable[[dict[str, Path]], None] | None = None,
) -> None:
    """The model, its metadata, split record and plots, as one group (see save_outputs)."""
    history, figures = metadata["history"], metadata["test"]
    n_test = metadata["split"]["sizes"]["test"]

    def write(target):
        target("split").write_text(json.dumps(split_record, indent=2) + "\n", encoding="utf-8")
        plot_history(history, target("history_plot"), title=f"{config.backbone} head", in_place=True)
        plot_confusion_matrix(
            figures["confusion_matrix"],
            class_names,
            target("confusion_plot"),
            title=f"Test split ({n_test} images)",
            in_place=True,
        )
        model.save(target("model"))
        metadata["timing_seconds"]["total"] = round(time.perf_counter() - started, 1)
        target("metadata").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")

    save_outputs(paths, write, on_saved)
