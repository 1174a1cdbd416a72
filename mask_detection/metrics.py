"""Classification figures, calibration (ECE, temperature fit) and plots (scikit-learn and SciPy for the numbers,
matplotlib for the PNGs).

Plots are drawn on ``matplotlib.figure.Figure`` objects and saved, never through pyplot: no backend is chosen
for the whole process and no figure is left open in a long-lived one.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .fileio import atomic_path

# Class indices: an array, or a list built by the caller.
Labels = np.ndarray | Sequence[int]


def classification_figures(y_true: Labels, y_pred: Labels, class_names: Sequence[str]) -> dict:
    """Accuracy, balanced accuracy, per-class precision/recall/F1/support and the confusion matrix, as plain data."""
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        confusion_matrix,
        precision_recall_fscore_support,
    )

    labels = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "confusion_matrix_axes": "rows: true class, columns: predicted class, in class_names order",
    }


def classification_report_text(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> str:
    from sklearn.metrics import classification_report

    return classification_report(
        y_true, y_pred, labels=list(range(len(class_names))), target_names=class_names, digits=4, zero_division=0
    )


def new_figure(figsize: tuple[float, float]) -> Any:
    """A ``matplotlib.figure.Figure`` of ``figsize`` inches, not known to pyplot; add axes with ``fig.subplots``."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def save_figure(fig: Any, path: Path | str, in_place: bool = False) -> None:
    """Write ``fig`` to ``path`` atomically (format from the file name).

    ``in_place``: ``path`` is already a temporary file of a group of outputs that the caller renames together
    (fileio.atomic_paths), so write it directly.
    """
    if in_place:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    else:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")


def plot_history(
    history: dict[str, list[float]], path: Path | str, title: str = "Training", in_place: bool = False
) -> None:
    """Accuracy and loss per epoch, train and validation, side by side (``in_place``: see save_figure)."""
    fig = new_figure((10, 4))
    axes = fig.subplots(1, 2)
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    for ax, key, label in ((axes[0], "accuracy", "Accuracy"), (axes[1], "loss", "Loss")):
        if key in history:
            ax.plot(epochs, history[key], label="train")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label.lower())
        ax.set_title(f"{title}: {label.lower()}")
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, path, in_place=in_place)


def plot_confusion_matrix(
    matrix: Any, class_names: list[str], path: Path | str, title: str = "Confusion matrix", in_place: bool = False
) -> None:
    """The confusion matrix with its counts (``in_place``: see save_figure)."""
    matrix = np.asarray(matrix)
    fig = new_figure((1.6 + 1.3 * len(class_names), 1.2 + 1.2 * len(class_names)))
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=30, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center", color="white" if value > threshold else "black")
    save_figure(fig, path, in_place=in_place)


def score_curve_figures(y_true: np.ndarray, probabilities: np.ndarray, class_names: list[str]) -> dict:
    """One-vs-rest ROC AUC and average precision per class, from class probabilities (N, n_classes)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y_true = np.asarray(y_true)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    figures = {}
    for i, name in enumerate(class_names):
        positive = y_true == i
        # AUC is undefined when a class has no positives or no negatives in the data.
        defined = 0 < positive.sum() < len(y_true)
        figures[name] = {
            "roc_auc": float(roc_auc_score(positive, probabilities[:, i])) if defined else None,
            "average_precision": float(average_precision_score(positive, probabilities[:, i])) if defined else None,
        }
    return figures


def _one_vs_rest_curves(
    y_true: np.ndarray, probabilities: np.ndarray, class_names: list[str], kind: str, path: Path | str, title: str
) -> None:
    from sklearn.metrics import precision_recall_curve, roc_curve

    y_true = np.asarray(y_true)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    fig = new_figure((5.5, 4.5))
    ax = fig.subplots()
    figures = score_curve_figures(y_true, probabilities, class_names)
    for i, name in enumerate(class_names):
        positive = y_true == i
        if not 0 < positive.sum() < len(y_true):
            continue
        if kind == "roc":
            x, y, _ = roc_curve(positive, probabilities[:, i])
            ax.plot(x, y, label=f"{name} (AUC {figures[name]['roc_auc']:.4f})")
        else:
            precision, recall, _ = precision_recall_curve(positive, probabilities[:, i])
            ax.plot(recall, precision, label=f"{name} (AP {figures[name]['average_precision']:.4f})")
    if kind == "roc":
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
    else:
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right" if kind == "roc" else "lower left")
    save_figure(fig, path)


def plot_roc_curves(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    class_names: list[str],
    path: Path | str,
    title: str = "ROC (one class vs the rest)",
) -> None:
    """One ROC curve per class (one-vs-rest) with its AUC in the legend."""
    _one_vs_rest_curves(y_true, probabilities, class_names, "roc", path, title)


def plot_pr_curves(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    class_names: list[str],
    path: Path | str,
    title: str = "Precision-recall (one class vs the rest)",
) -> None:
    """One precision-recall curve per class (one-vs-rest) with its average precision in the legend."""
    _one_vs_rest_curves(y_true, probabilities, class_names, "pr", path, title)


ECE_BINS = 15
# The temperature search range: beyond it the fit is chasing a handful of images, not calibrating.
TEMPERATURE_RANGE = (0.05, 20.0)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: over equal-width bins of the top-class probability, the image-weighted mean gap between that
    probability and the accuracy of the images in the bin (0: "90%" is right 90% of the time)."""
    probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels)
    if len(labels) == 0:
        return 0.0
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    # Bin i holds (i/bins, (i+1)/bins]; a confidence of exactly 0 (impossible for a top class) would go to bin 0.
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    total = 0.0
    for b in np.unique(which):
        in_bin = which == b
        total += in_bin.sum() * abs(confidence[in_bin].mean() - correct[in_bin].mean())
    return float(total / len(labels))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax_with_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    return np.exp(log_softmax(np.asarray(logits, np.float64) / temperature))


def temperature_nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the true classes under softmax(logits / temperature)."""
    logp = log_softmax(np.asarray(logits, np.float64) / temperature)
    return float(-logp[np.arange(len(labels)), np.asarray(labels)].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float | None:
    """The temperature T minimising the negative log-likelihood of softmax(logits / T) (Guo et al. 2017), or
    None when every image is classified correctly: then a sharper softmax is always "better" and the fit has no
    minimum.

    The likelihood is convex in 1/T, so a bounded one-dimensional search over log T finds the optimum.
    """
    from scipy.optimize import minimize_scalar

    logits, labels = np.asarray(logits, np.float64), np.asarray(labels)
    if len(labels) == 0 or (logits.argmax(axis=1) == labels).all():
        return None
    low, high = np.log(TEMPERATURE_RANGE)
    found = minimize_scalar(
        lambda log_t: temperature_nll(logits, labels, float(np.exp(log_t))),
        bounds=(low, high),
        method="bounded",
        options={"xatol": 1e-4},
    )
    # Never worse than leaving the probabilities as they are (the search stops at a tolerance).
    return float(np.exp(found.x)) if found.fun <= temperature_nll(logits, labels, 1.0) else 1.0
