"""The head, trained on the backbone features alone: classes weighted to balance, early stopping on the
validation loss (best epoch's weights restored), ended between steps by Ctrl-C or SIGTERM."""

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._tf import keras
from ..interrupts import StopFlag
from ..model import apply_layers, build_head_layers, compile_model
from .config import TrainConfig

HEAD_STEPS_PER_EXECUTION = 64


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    return np.eye(n_classes, dtype=np.float32)[labels]


def balanced_class_weight(labels: np.ndarray, n_classes: int) -> dict[int, float]:
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    return {i: float(len(labels) / (n_classes * c)) for i, c in enumerate(counts) if c > 0}


@dataclass
class HeadFit:
    """The trained head: its layers (shared with the saved model), its Keras model, the same model up to its
    logits (sharing the layers) and its training history."""

    layers: list
    model: Any
    logits_model: Any
    history: dict[str, list[float]]
    seconds: float

    def logits(self, features: np.ndarray) -> np.ndarray:
        return self.logits_model(features, training=False).numpy()

    @property
    def epochs_run(self) -> int:
        return len(self.history.get("loss", []))

    @property
    def best_epoch(self) -> int:
        val_loss = self.history.get("val_loss")
        return int(np.argmin(val_loss)) + 1 if val_loss else self.epochs_run


def stop_training_callback(stop: StopFlag) -> Any:
    """A Keras callback that ends training after the current step once ``stop`` is set."""

    Callback: Any = keras().callbacks.Callback  # a base class from a module loaded at run time (and untyped)

    class _StopTrainingWhen(Callback):
        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if stop.set:
                self.model.stop_training = True

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.on_train_batch_end(0)

    return _StopTrainingWhen()


def fit_head(
    base: np.ndarray,
    aug: np.ndarray,
    labels: np.ndarray,
    split: dict[str, np.ndarray],
    n_classes: int,
    config: TrainConfig,
) -> HeadFit:
    """Train the head on the features of the training images (and their augmented views), early stopping on the
    validation loss with the best epoch's weights restored."""
    k = keras()
    train_x = np.concatenate([base[split["train"]], *aug]) if len(aug) else base[split["train"]]
    train_y = np.tile(labels[split["train"]], 1 + len(aug))
    val_x, val_y = base[split["validation"]], labels[split["validation"]]
    head_layers = build_head_layers(n_classes, config.hidden_units, config.dropout)
    head_input = k.Input(shape=(base.shape[1],), name="features")
    logits = apply_layers(head_input, head_layers[:-1])
    head = k.Model(head_input, head_layers[-1](logits), name="head")
    # Many small batches per compiled call: the same updates in the same order, about 1.8x faster epochs.
    compile_model(head, config.learning_rate, steps_per_execution=HEAD_STEPS_PER_EXECUTION)
    stopper = k.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)
    stop = StopFlag()
    started = time.perf_counter()
    # Ctrl-C/SIGTERM end training between steps: an interrupt raised inside TensorFlow's step can corrupt its
    # heap (seen: "free(): invalid next size" and an abort instead of exit 130).
    with stop.on_signals():
        fit = head.fit(
            train_x,
            one_hot(train_y, n_classes),
            validation_data=(val_x, one_hot(val_y, n_classes)),
            epochs=config.epochs,
            batch_size=config.batch_size,
            shuffle=True,
            class_weight=balanced_class_weight(train_y, n_classes),
            callbacks=[stopper, stop_training_callback(stop)],
            verbose=(2 if config.progress else 0),
        )
    stop.raise_if_set()
    history = {key: [float(v) for v in values] for key, values in fit.history.items()}
    logits_model = k.Model(head_input, logits, name="head_logits")
    return HeadFit(head_layers, head, logits_model, history, time.perf_counter() - started)
