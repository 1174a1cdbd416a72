"""summary.md of a scenes evaluation: the report's figures as tables a person reads, one section a function."""

from typing import Any

from ..boxes import BUCKET_NAMES
from ..classes import INCORRECT_MASK, WITHOUT_MASK
from .report import percent
from .scoring import TARGETS

Report = dict[str, Any]

# Messages listed per kind of skipped input; report.json has them all.
LISTED_PER_KIND = 20


def scenes_markdown(report: Report) -> str:
    """The whole summary, from report.json's content."""
    primary = report["by_iou"][iou_key(report["settings"]["iou"])]
    lines = [f"# Scene evaluation: {report['scenes']}", ""]
    for section in (
        _setup_lines(report),
        _headline_lines(report, primary),
        _detector_recall_lines(report),
        _detector_by_class_lines(report, primary),
        _classifier_lines(report, primary),
        _pipeline_lines(primary),
        _skipped_lines(report),
        _plots_lines(),
    ):
        lines += section
    return "\n".join(lines)


def iou_key(value: float) -> str:
    """How report.json names an IoU threshold: "0.3"."""
    return f"{value:g}"


def _setup_lines(report: Report) -> list[str]:
    s = report["settings"]
    data = report["data"]
    return [
        f"Model `{report['model']}` ({', '.join(report['class_names'])}); face detector YuNet at score "
        f">= {s['face_confidence']}, crop margin {s['margin']}, mask threshold "
        f"{s['mask_threshold'] if s['mask_threshold'] is not None else 'argmax'}; matching one-to-one, highest "
        f"score first, IoU >= {s['iou']:g}; {INCORRECT_MASK} "
        f"{'scored as ' + WITHOUT_MASK if s['incorrect_as_without'] else 'reported on its own'}.",
        "",
        f"{data['images']} photos, {data['faces']} annotated faces "
        f"({', '.join(f'{k} {v}' for k, v in data['faces_by_class'].items())}); "
        f"{report['timing']['seconds_per_photo'] * 1000:.0f} ms per photo.",
        "",
    ]


def _headline_lines(report: Report, primary: Report) -> list[str]:
    lines = [
        "## Headline (target slice: " + primary["headline"]["slice"] + ")",
        "",
        "| IoU | detection recall | unmatched detections / photo | balanced accuracy (matched faces) | faces "
        "| violations caught | masks recognised | ECE |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, figures in report["by_iou"].items():
        h = figures["headline"]
        lines.append(
            f"| {key} | {percent(h['detection_recall'])} | {unmatched_text(h)} | "
            f"{percent(h['balanced_accuracy'])} | {h['faces']} | {violations_text(h)} | {masks_text(h)} | "
            f"{ece_text(h)} |"
        )
    t = TARGETS
    lines += [
        "",
        f"Targets: recall >= {t['detection_recall'] * 100:.0f}% with <= {t['unmatched_per_image']:.1f} unmatched "
        f"detection per photo, balanced accuracy >= {t['balanced_accuracy'] * 100:.0f}%: "
        f"{'met' if primary['headline']['meets_targets'] else 'not met'} at IoU {report['settings']['iou']:g}.",
        "",
    ]
    return lines


def violations_text(figures: Report) -> str:
    """Without_mask recall of found bare faces: "75.0% (3/4)"."""
    return f"{percent(figures['violations_caught'])} ({figures['without_mask_caught']}/{figures['without_mask_found']})"


def masks_text(figures: Report) -> str:
    """With_mask recall of found masked faces: "97.5% (39/40)"."""
    return f"{percent(figures['with_mask_recall'])} ({figures['with_mask_recognised']}/{figures['with_mask_found']})"


def ece_text(figures: Report) -> str:
    """The calibration error, three decimals."""
    return "n/a" if figures["ece"] is None else f"{figures['ece']:.3f}"


def unmatched_text(headline: Report) -> str:
    """Unmatched detections per photo, two decimals."""
    return "n/a" if headline["unmatched_per_image"] is None else f"{headline['unmatched_per_image']:.2f}"


def _detector_recall_lines(report: Report) -> list[str]:
    lines = [
        "## Detector",
        "",
        "Recall by face size (short side of the annotated box, px), every class:",
        "",
        "| IoU | " + " | ".join(BUCKET_NAMES) + " | all | precision |",
        "|---|" + "---|" * (len(BUCKET_NAMES) + 2),
    ]
    for key, figures in report["by_iou"].items():
        d = figures["detector"]
        lines.append(
            f"| {key} | "
            + " | ".join(_recall_cells(d["recall_by_size"]))
            + f" | {percent(d['recall'])} | {percent(d['precision'])} |"
        )
    return lines


def _detector_by_class_lines(report: Report, primary: Report) -> list[str]:
    d = primary["detector"]
    lines = [
        "",
        f"Recall by class and size at IoU {report['settings']['iou']:g}:",
        "",
        "| class | " + " | ".join(BUCKET_NAMES) + " | all |",
        "|---|" + "---|" * (len(BUCKET_NAMES) + 1),
    ]
    for label, rows in d["recall_by_class_and_size"].items():
        total = d["recall_by_class"][label]
        lines.append(
            f"| {label} | "
            + " | ".join(_recall_cells(rows))
            + f" | {percent(total['recall'])} ({total['found']}/{total['faces']}) |"
        )
    lines += [
        "",
        "Precision by detection size (the detection's own box): "
        + ", ".join(
            f"{k} {percent(v['precision'])} ({v['matched']}/{v['detections']})"
            for k, v in d["precision_by_detection_size"].items()
        )
        + ".",
    ]
    return lines + _box_offset_lines(primary["box_offsets"])


def _recall_cells(rows: Report) -> list[str]:
    """ "94.9% (149/157)" per size bucket, "-" for a bucket without faces."""
    cells = []
    for name in BUCKET_NAMES:
        e = rows.get(name)
        cells.append(f"{percent(e['recall'])} ({e['found']}/{e['faces']})" if e else "-")
    return cells


def _box_offset_lines(o: Report) -> list[str]:
    if not o.get("pairs"):
        return []
    return [
        "",
        f"Box offsets over {o['pairs']} matched faces: median centre offset "
        f"{o['median_centre_offset']:.3f} of the annotated box height (dx {o['median_centre_dx']:+.3f}, "
        f"dy {o['median_centre_dy']:+.3f}; dy > 0: detector box lower), detector/annotation height "
        f"ratio {o['median_height_ratio']:.2f}, width ratio {o['median_width_ratio']:.2f}, median IoU "
        f"{o['median_iou']:.2f}.",
    ]


def _classifier_lines(report: Report, primary: Report) -> list[str]:
    c = primary["classifier"]
    lines = ["", f"## Classifier on matched faces (IoU {report['settings']['iou']:g}, every size)", ""]
    if c["faces"]:
        names = report["class_names"]
        lines += [
            f"{c['faces']} faces: accuracy {percent(c['accuracy'])}, balanced accuracy "
            f"{percent(c['balanced_accuracy'])}; per class: "
            + ", ".join(f"{k} {percent(v)}" for k, v in c["accuracy_by_class"].items())
            + ".",
            "",
            "| true \\ predicted | " + " | ".join(names) + " |",
            "|---|" + "---|" * len(names),
        ]
        for name, row in zip(names, c["confusion_matrix"], strict=True):
            lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    if c.get("by_size"):
        lines += [
            "",
            "By face size: "
            + ", ".join(
                f"{k} px {percent(v['balanced_accuracy'])} balanced, violations caught {violations_text(v)}, "
                f"masks recognised {masks_text(v)}, "
                f"ECE {ece_text(v)} ({v['faces']} faces)"
                for k, v in c["by_size"].items()
            )
            + ".",
            "",
            "Violations caught: found bare faces labelled without_mask. Masks recognised: found masked faces "
            "labelled with_mask. ECE: calibration error of the top-class "
            "probability on the found faces (0: a reported 90% is right 90% of the time).",
        ]
    for label, counts in c["labels_given_to_other_classes"].items():
        lines += ["", f"{label} faces found were labelled: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + "."]
    return lines


def _pipeline_lines(primary: Report) -> list[str]:
    p = primary["pipeline"]
    lines = [
        "",
        "## Pipeline: what happened to each annotated face",
        "",
        "| class | faces | correct | wrong label | missed |",
        "|---|---|---|---|---|",
    ]
    for label, e in p["outcomes_by_class"].items():
        correct = f"{e['correct']}" + (f" (+{e['found']} found, no such class in the model)" if e.get("found") else "")
        lines.append(f"| {label} | {e['faces']} | {correct} | {e['wrong_label']} | {e['missed']} |")
    lines += [
        "",
        f"False alarms (detections matching no annotated face): {p['false_alarms']} in total, "
        f"{p['false_alarms_per_image']:.2f} per photo, in {p['images_with_false_alarms']} photos. "
        f"{p['note'].capitalize()}.",
    ]
    return lines


def _skipped_lines(report: Report) -> list[str]:
    skipped = {k: v for k, v in report["data"]["skipped"].items() if v}
    lines = ["", "## Skipped", ""]
    for kind, messages in skipped.items():
        lines.append(f"- {kind.replace('_', ' ')}: {len(messages)}")
        lines += [f"  - {m}" for m in messages[:LISTED_PER_KIND]]
        if len(messages) > LISTED_PER_KIND:
            lines.append(f"  - ... and {len(messages) - LISTED_PER_KIND} more (see report.json)")
    if not skipped:
        lines.append("nothing")
    if report["data"]["unannotated_images"]:
        lines.append(f"- images without an annotation file (not evaluated): {report['data']['unannotated_images']}")
    return lines


def _plots_lines() -> list[str]:
    return [
        "",
        "## Plots",
        "",
        "- confusion matrix: `confusion_matrix.png`",
        "- recall by face size: `recall_by_size.png`",
        "- worst misses, wrong labels and false alarms: `gallery.png`",
        "",
    ]
