"""The folder evaluation: a labelled folder of face crops (one sub-folder per class) through the classifier alone;
accuracy, per-class figures, confusion matrix, ROC and precision-recall curves, written to a report folder."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from ..classifier import load_classifier
from ..dataset import find_classes, scan_class_folder
from ..decision import DecisionRule
from ..errors import DatasetError, ImageDecodeError, exception_line
from ..fileio import display_path, safe_text
from ..images import decode_image, to_model_input
from ..interfaces import Classifier
from ..metrics import (
    classification_figures,
    classification_report_text,
    plot_confusion_matrix,
    plot_pr_curves,
    plot_roc_curves,
    score_curve_figures,
)
from .report import (
    FileWriter,
    check_report_dir,
    default_report_dir,
    json_writer,
    percent,
    text_writer,
    write_report_files,
)
from .scoring import quiet_metrics

Warn = Callable[[str], None]
Report = dict[str, Any]

FOLDER_REPORT_FILES = ("report.json", "summary.md", "confusion_matrix.png", "roc.png", "precision_recall.png")
BATCH_SIZE = 32


@dataclass(frozen=True)
class FolderEvaluation:
    """What ``evaluate_folder`` measured and wrote."""

    report_dir: Path
    report: Report  # report.json's content
    report_text: str  # scikit-learn's per-class precision / recall / F1 table
    images: int
    accuracy: float
    balanced_accuracy: float
    skipped: dict[str, list[str]]  # kind -> what was left out

    @property
    def skipped_count(self) -> int:
        return sum(len(messages) for messages in self.skipped.values())


@dataclass
class ClassFolders:
    names: list[str]  # the class folders, sorted
    files: dict[str, list[str]]  # class -> relative '/'-paths of its files
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (class, message): broken links...


@dataclass
class Classified:
    """The classifier's answers on the decodable images."""

    y_true: np.ndarray  # class index of each image
    probabilities: np.ndarray  # (images, classes)
    undecodable: list[str]


def evaluate_folder(
    folder: str | Path,
    model_path: str | Path | None = None,
    report_dir: str | Path | None = None,
    mask_threshold: float | None = None,
    batch_size: int = BATCH_SIZE,
    progress: bool = False,
    threads: int | None = None,
    warn: Warn | None = None,
) -> FolderEvaluation:
    """Evaluate the classifier on ``folder``/<class>/<images> (class folders the model does not know are left
    out). The report folder (default output/eval-<folder name>) is checked before any slow work; ``warn`` hears
    of every file or folder left out, and the result lists them. ``progress``: a progress bar on stderr."""
    warn = warn or _ignore
    folder = Path(folder)
    report_dir = Path(report_dir) if report_dir else default_report_dir(folder)
    classes = _scan_checked_class_folders(folder, report_dir, warn)
    classifier = load_classifier(model_path, threads=threads, warn=warn)
    class_names = list(classifier.class_names)
    rule = DecisionRule(tuple(class_names), mask_threshold)
    if rule.ignored_threshold:
        warn(rule.ignored_message("image"))
    known, unknown = _split_by_model_classes(folder, classes, class_names, warn)
    candidates = [(class_names.index(name), f"{name}/{rel}") for name in known for rel in classes.files[name]]
    classified = _classify(classifier, folder, candidates, batch_size, progress, warn)
    skipped = {
        "undecodable": classified.undecodable,
        "unreadable": [safe_text(message) for name, message in classes.unreadable if name in known],
        "unknown_class_folders": [safe_text(name) for name in unknown],
    }
    report, text = _folder_report(folder, classifier, class_names, rule, classified, skipped)
    write_report_files(report_dir, _report_writers(folder, report, text, classified, class_names))
    return FolderEvaluation(
        report_dir, report, text, report["images"], report["accuracy"], report["balanced_accuracy"], skipped
    )


def _scan_checked_class_folders(folder: Path, report_dir: Path, warn: Warn) -> ClassFolders:
    """The class folders' files, once the report folder is known to be writable and none of the inputs."""
    names = find_classes(folder)
    # Before the slow part. Class folders are read recursively: the report may not go anywhere inside one.
    check_report_dir(report_dir, inside_forbidden=[folder / name for name in names])
    classes = ClassFolders(names, {})
    for name in names:
        classes.files[name], broken = scan_class_folder(folder / name, warn=warn)
        classes.unreadable.extend((name, f"{name}/{rel}: {reason}") for rel, reason in broken)
    if not any(classes.files.values()):
        raise DatasetError(f"no files in the class folders of {display_path(folder)}")
    check_report_dir(
        report_dir,
        input_files=[folder / name / rel for name in names for rel in classes.files[name]],
        report_files=FOLDER_REPORT_FILES,
    )
    return classes


def _split_by_model_classes(
    folder: Path, classes: ClassFolders, class_names: list[str], warn: Warn
) -> tuple[list[str], list[str]]:
    """(class folders the model knows, the others); DatasetError when it knows none."""
    known = [name for name in classes.names if name in class_names]
    unknown = [name for name in classes.names if name not in class_names]
    for name in unknown:
        warn(
            f"skipped: class folder {display_path(folder / name)} ({len(classes.files[name])} files) is not a "
            f"class of the model ({', '.join(class_names)})"
        )
    if not known:
        raise DatasetError(
            f"none of the class folders of {display_path(folder)} ({', '.join(classes.names)}) is a "
            f"class of the model ({', '.join(class_names)})"
        )
    return known, unknown


def _classify(
    classifier: Classifier,
    folder: Path,
    candidates: list[tuple[int, str]],
    batch_size: int,
    progress: bool,
    warn: Warn,
) -> Classified:
    """Decode and classify every (class index, relative path), ``batch_size`` images a call."""
    labels: list[int] = []
    probabilities: list[np.ndarray] = []
    undecodable: list[str] = []
    batch: list[np.ndarray] = []
    batch_labels: list[int] = []
    for label, rel in tqdm(candidates, desc="images", unit="img", disable=not progress, leave=False):
        face = _model_input(classifier, folder, rel, undecodable, warn)
        if face is None:
            continue
        batch.append(face)
        batch_labels.append(label)
        if len(batch) >= batch_size:
            probabilities.append(classifier.predict(np.stack(batch)))
            labels.extend(batch_labels)
            batch, batch_labels = [], []
    if batch:
        probabilities.append(classifier.predict(np.stack(batch)))
        labels.extend(batch_labels)
    if not labels:
        raise DatasetError(f"no image in {display_path(folder)} could be decoded")
    return Classified(np.asarray(labels), np.concatenate(probabilities), undecodable)


def _model_input(
    classifier: Classifier, folder: Path, rel: str, undecodable: list[str], warn: Warn
) -> np.ndarray | None:
    """One image as the classifier's input; None (added to ``undecodable``) when it cannot be decoded."""
    try:
        rgb = decode_image(folder / rel, max_side=classifier.input_size)
        return to_model_input(rgb, classifier.input_size)
    except ImageDecodeError as exc:
        undecodable.append(safe_text(exc))
        warn(f"skipped: {exc}")
    except (MemoryError, cv2.error) as exc:
        # One picture too big for memory is one failed file, not a lost run.
        reason = "out of memory" if isinstance(exc, MemoryError) else f"OpenCV error: {exception_line(exc, last=True)}"
        undecodable.append(safe_text(f"{rel}: {reason}"))
        warn(f"skipped {rel}: {reason}")
    return None


def _folder_report(
    folder: Path,
    classifier: Classifier,
    class_names: list[str],
    rule: DecisionRule,
    classified: Classified,
    skipped: dict[str, list[str]],
) -> tuple[Report, str]:
    """(report.json's content, scikit-learn's per-class table)."""
    y_true = classified.y_true
    y_pred = rule.decide(classified.probabilities)
    with quiet_metrics():
        figures = classification_figures(y_true, y_pred, class_names)
        figures["curves"] = score_curve_figures(y_true, classified.probabilities, class_names)
        text = classification_report_text(y_true, y_pred, class_names)
    report = {
        "kind": "folder",
        "folder": display_path(folder),
        "model": None if classifier.path is None else display_path(classifier.path),
        "class_names": class_names,
        "mask_threshold": rule.mask_threshold,
        "images": int(len(y_true)),
        "images_by_class": {name: int((y_true == i).sum()) for i, name in enumerate(class_names)},
        "skipped": skipped,
        **figures,
    }
    return report, text


def folder_markdown(report: Report, text: str) -> str:
    """summary.md of a folder evaluation."""
    names = report["class_names"]
    skipped = report["skipped"]
    by_class = ", ".join(f"{k} {v}" for k, v in report["images_by_class"].items())
    curve_lines = [
        f"- {name}: ROC AUC {v['roc_auc']:.4f}, average precision {v['average_precision']:.4f}"
        for name, v in report["curves"].items()
        if v["roc_auc"] is not None
    ]
    lines = [
        f"# Folder evaluation: {report['folder']}",
        "",
        f"Model `{report['model']}`; {report['images']} face images ({by_class}); skipped: "
        f"{len(skipped['undecodable'])} undecodable, {len(skipped['unreadable'])} unreadable, "
        f"{len(skipped['unknown_class_folders'])} class folders unknown to the model.",
        "",
        f"Accuracy {percent(report['accuracy'], 2)}, balanced accuracy {percent(report['balanced_accuracy'], 2)}.",
        "",
        "```",
        text.rstrip(),
        "```",
        "",
        "| true \\ predicted | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    lines += [
        f"| {name} | " + " | ".join(str(v) for v in row) + " |"
        for name, row in zip(names, report["confusion_matrix"], strict=True)
    ]
    lines += ["", *curve_lines, "", "Plots: `confusion_matrix.png`, `roc.png`, `precision_recall.png`.", ""]
    return "\n".join(lines)


def _report_writers(
    folder: Path, report: Report, text: str, classified: Classified, class_names: list[str]
) -> list[FileWriter]:
    def curves(plot: Callable[..., None]) -> Callable[[Path], None]:
        def write(tmp: Path) -> None:
            with quiet_metrics():
                plot(classified.y_true, classified.probabilities, class_names, tmp)

        return write

    return [
        ("report.json", json_writer(report)),
        ("summary.md", text_writer(folder_markdown(report, text))),
        (
            "confusion_matrix.png",
            lambda tmp: plot_confusion_matrix(
                report["confusion_matrix"], class_names, tmp, title=display_path(folder.name), in_place=True
            ),
        ),
        ("roc.png", curves(plot_roc_curves)),
        ("precision_recall.png", curves(plot_pr_curves)),
    ]


def _ignore(message: str) -> None:
    """The default ``warn``: every message is in the result too."""
