"""summary.md of a video evaluation: the report's figures as tables a person reads."""

from typing import Any

from .report import percent

Report = dict[str, Any]

# name in the headline -> (what it is, how to show it)
HEADLINE_ROWS = (
    ("detection_recall", "detector recall per frame", "percent"),
    ("false_alarms_per_frame", "false alarms per frame", "number"),
    ("IDF1", "IDF1", "percent"),
    ("HOTA", "HOTA", "percent"),
    ("MOTA", "MOTA", "percent"),
    ("identity_switches", "identity switches (CLEAR)", "count"),
    ("tracks_per_person", "tracks per true person", "number"),
    ("identity_purity", "identity purity", "percent"),
    ("tracks_across_cut", "tracks across a scene cut", "count"),
    ("flicker_per_100_steps", "label changes per 100 frame steps", "number"),
    ("people_with_label_change", "people with any label change", "percent"),
    ("people_counted", "people counted", "count"),
    ("true_people", "true people", "count"),
    ("person_balanced_accuracy", "balanced accuracy, per-person verdicts", "percent"),
    ("per_frame_balanced_accuracy", "balanced accuracy, per frame", "percent"),
    ("verdict_gain", "per-person minus per-frame", "points"),
    ("label_probability_under_half", "face-frames whose label's probability is under 50%", "count"),
)


def video_markdown(report: Report) -> str:
    """The whole summary, from report.json's content."""
    lines = [f"# Video evaluation: {report['video']} ({report['settings']['mode']})", ""]
    for section in (_setup_lines(report), _headline_lines(report), _detail_lines(report), _problem_lines(report)):
        lines += section
    return "\n".join(lines)


def shown(value: Any, kind: str) -> str:
    """A figure as the summary and the command show it: n/a when not applicable."""
    if value is None:
        return "n/a"
    if kind == "percent":
        return percent(value)
    if kind == "points":
        return f"{value * 100:+.1f}"
    if kind == "count":
        return str(int(value))
    return f"{value:.2f}"


def _setup_lines(report: Report) -> list[str]:
    s, data = report["settings"], report["data"]
    fps = report["timing"]["frames_per_second"]
    tracking = s["tracking"]
    return [
        f"Ground truth `{report['gt']}` (classes: {report['gt_classes']}; segments: "
        f"{report['gt_segments'] or 'none'}). Model `{report['model']}` ({', '.join(report['class_names'])}); "
        f"face detector at score >= {s['face_confidence']}, detection on "
        f"{'the full frame' if s['detect_size'] is None else str(s['detect_size']) + ' px'}; matching one-to-one, "
        f"highest score first, IoU >= {s['iou']:g}.",
        "",
        f"Mode: {s['mode']}"
        + ("" if tracking is None else " (" + ", ".join(f"{k} {v}" for k, v in tracking.items()) + ")")
        + f". {data['frames']} frames at {data['fps']:g} FPS, {data['segments']} scene segments; "
        f"{'n/a' if fps is None else f'{fps:.1f}'} frames per second through the pipeline.",
        "",
    ]


def _headline_lines(report: Report) -> list[str]:
    h = report["headline"]
    lines = [
        f"## Headline ({h['slice']}, IoU {report['settings']['iou']:g})",
        "",
        "| figure | value | target | met |",
        "|---|---|---|---|",
    ]
    for name, text, kind in HEADLINE_ROWS:
        target = h["targets"].get(name)
        bound = "" if target is None else f"{'<=' if target['bound'] == 'max' else '>='} {shown(target['value'], kind)}"
        met = h["met"].get(name)
        lines.append(f"| {text} | {shown(h[name], kind)} | {bound} | {'' if target is None else _met_text(met)} |")
    lines += [
        "",
        "Per-frame balanced accuracy scores every matched face-frame's shown label (tracked: the person's verdict "
        "at that frame; per-frame mode: that frame's own classification). Identity figures need tracks: n/a in "
        "per-frame mode.",
        "",
    ]
    return lines


def _met_text(met: bool | None) -> str:
    return "n/a" if met is None else ("yes" if met else "**no**")


def _detail_lines(report: Report) -> list[str]:
    f = report["figures"]
    lines = ["## Details", ""]
    for section in ("detector", "identity", "tracks", "flicker", "people", "verdicts"):
        values = f[section]
        if values is None:
            lines.append(f"- {section}: n/a (per-frame mode)")
            continue
        shown_values = ", ".join(f"{k} {_plain(v)}" for k, v in values.items() if k not in ("note", "source"))
        lines.append(f"- {section}: {shown_values}")
    lines.append("")
    return lines


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and len(value) > 12:
        return f"[{', '.join(map(str, value[:12]))}, ...]"
    return str(value)


def _problem_lines(report: Report) -> list[str]:
    if not report["problems"]:
        return []
    return ["## Problems", "", *[f"- {p}" for p in report["problems"]], ""]
