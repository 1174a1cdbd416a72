"""The head, trained on the backbone features alone: classes weighted to balance, early stopping on the
validation loss (best epoch's weights restored), ended between steps by Ctrl-C or SIGTERM; then, when asked, the
backbone's top fine-tuned with it on the cached activations below the top (``fine_tune``)."""

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._tf import keras
from ..interrupts import StopFlag
from ..model import FineTuneSplit, apply_layers, build_head_layers, compile_model
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


def _fit(
    model: Any,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    n_classes: int,
    epochs: int,
    patience: int,
    config: TrainConfig,
) -> dict[str, list[float]]:
    """Fit a compiled model with early stopping on the validation loss (the best epoch's weights restored) and
    balanced class weights; returns its history."""
    k = keras()
    (train_x, train_y), (val_x, val_y) = train, validation
    stopper = k.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    stop = StopFlag()
    # Ctrl-C/SIGTERM end training between steps: an interrupt raised inside TensorFlow's step can corrupt its
    # heap (seen: "free(): invalid next size" and an abort instead of exit 130).
    with stop.on_signals():
        fit = model.fit(
            train_x,
            one_hot(train_y, n_classes),
            validation_data=(val_x, one_hot(val_y, n_classes)),
            epochs=epochs,
            batch_size=config.batch_size,
            shuffle=True,
            class_weight=balanced_class_weight(train_y, n_classes),
            callbacks=[stopper, stop_training_callback(stop)],
            verbose=(2 if config.progress else 0),
        )
    stop.raise_if_set()
    return {key: [float(v) for v in values] for key, values in fit.history.items()}


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
    started = time.perf_counter()
    history = _fit(head, (train_x, train_y), (val_x, val_y), n_classes, config.epochs, config.patience, config)
    logits_model = k.Model(head_input, logits, name="head_logits")
    return HeadFit(head_layers, head, logits_model, history, time.perf_counter() - started)


def fine_tune(
    tuning: FineTuneSplit,
    head: HeadFit,
    base: np.ndarray,
    aug: np.ndarray,
    labels: np.ndarray,
    split: dict[str, np.ndarray],
    n_classes: int,
    config: TrainConfig,
) -> HeadFit:
    """Train the backbone's top (``tuning``) with the trained head on the cached activations below it, RMSprop at
    ``config.fine_tune_learning_rate``, early stopping on the validation loss as ``fit_head`` (best epoch's
    weights restored). The head was trained first on the frozen features, so that the top's first steps follow a
    head that already separates the classes, not a random one's large gradients.

    When no epoch beats the head's best validation loss, the weights from before go back (the top stays as it
    was). Returns a HeadFit whose models take activations, its history the head's followed by this stage's.
    """
    k = keras()
    aug = aug[: config.fine_tune_augment_views]  # each view costs a pass over the top as long as the originals'
    train_x = np.concatenate([base[split["train"]], *aug]) if len(aug) else base[split["train"]]
    train_y = np.tile(labels[split["train"]], 1 + len(aug))
    val_x, val_y = base[split["validation"]], labels[split["validation"]]
    activations = k.Input(shape=base.shape[1:], dtype="float16", name="activations")
    logits = apply_layers(tuning.pooled(activations), head.layers[:-1])
    model = k.Model(activations, head.layers[-1](logits), name="top_and_head")
    tuning.set_trainable(True)
    before = [v.numpy() for v in model.trainable_variables]
    compile_model(model, config.fine_tune_learning_rate)
    started = time.perf_counter()
    try:
        epochs, patience = config.fine_tune_epochs, config.fine_tune_patience
        history = _fit(model, (train_x, train_y), (val_x, val_y), n_classes, epochs, patience, config)
        head_best = min(head.history.get("val_loss", [np.inf]))
        if min(history.get("val_loss", [np.inf])) >= head_best:
            for variable, value in zip(model.trainable_variables, before, strict=True):
                variable.assign(value)
    finally:
        # Frozen again: the saved model says frozen layer by layer, as a model without fine-tuning does.
        tuning.set_trainable(False)
    merged = {key: head.history.get(key, []) + history.get(key, []) for key in head.history}
    logits_model = k.Model(activations, logits, name="top_and_head_logits")
    return HeadFit(head.layers, model, logits_model, merged, head.seconds + time.perf_counter() - started)
