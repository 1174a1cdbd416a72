"""The documentation: every relative link and anchor resolves, the README stays a front page, and the library
example in docs/library.md runs as written."""

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
# [text](target) and ![alt](target); the target ends at the first space (a title may follow) or ")".
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+).*?\1")


def doc_files():
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def prose_lines(text):
    """(line number, line) outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def github_anchor(heading_text):
    """GitHub's anchor for a heading: the rendered text lower-cased, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading_text)  # links and images: their text
    text = text.replace("`", "")
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # \w is Unicode-aware: letters, digits, underscore
    return text.replace(" ", "-")


def anchors_of(path):
    """Every anchor GitHub gives the headings of a markdown file (repeats get -1, -2, ...)."""
    seen = {}
    anchors = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        anchor = github_anchor(match.group(2))
        if anchor in seen:
            seen[anchor] += 1
            anchor = f"{anchor}-{seen[anchor]}"
        else:
            seen[anchor] = 0
        anchors.add(anchor)
    return anchors


def links_of(path):
    """(line number, target) of every markdown link and image outside code."""
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            yield number, match.group(1)


def broken_links(path):
    """Relative links of ``path`` whose file or #anchor does not exist, as readable lines."""
    problems = []
    for number, target in links_of(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http(s), mailto: not fetched
            continue
        where = f"{path.relative_to(REPO)}:{number}: {target}"
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not file_part and not anchor:
            problems.append(f"{where}: empty link")
        elif not linked.exists():
            problems.append(f"{where}: no such file")
        elif anchor:
            if linked.suffix != ".md":
                problems.append(f"{where}: an anchor into a file that is not markdown")
            elif anchor not in anchors_of(linked):
                problems.append(f"{where}: no heading with this anchor in {linked.relative_to(REPO)}")
    return problems


def test_github_anchor_rules():
    assert github_anchor("Exit codes and errors") == "exit-codes-and-errors"
    assert github_anchor("Outputs: never over an input, never half-written") == (
        "outputs-never-over-an-input-never-half-written"
    )
    assert github_anchor("export_model.py: fast inference and small devices (TFLite)") == (
        "export_modelpy-fast-inference-and-small-devices-tflite"
    )
    assert github_anchor("Photos with boxes: `--scenes`") == "photos-with-boxes---scenes"


def test_docs_exist_and_link_back():
    for name in ("commands", "results", "training", "evaluation", "design", "library"):
        page = REPO / "docs" / f"{name}.md"
        assert page.is_file(), page
        assert "](../README.md)" in page.read_text(encoding="utf-8").split("\n## ")[0], f"{page}: no link back"


def test_every_relative_link_resolves():
    files = doc_files()
    assert sum(1 for path in files for _ in links_of(path)) > 20  # the parser does find the links
    problems = [problem for path in files for problem in broken_links(path)]
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_link_check_catches_a_broken_link(tmp_path, monkeypatch):
    """The check itself can fail: a missing file, a missing anchor and a missing image are all reported."""
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Page\n\n## Real heading\n", encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Title\n\n[ok](docs/page.md#real-heading) [ok](#title) [web](https://example.com/x)\n"
        "[gone](docs/missing.md) [bad anchor](docs/page.md#no-such-heading) ![pic](docs/missing.png)\n"
        "```\n[in code](nowhere.md)\n```\n`[inline code](nowhere.md)`\n",
        encoding="utf-8",
    )
    problems = broken_links(readme)
    assert len(problems) == 3, problems
    assert "docs/missing.md: no such file" in problems[0]
    assert "no heading with this anchor" in problems[1]
    assert "docs/missing.png: no such file" in problems[2]


def test_readme_is_a_front_page():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines, at most {README_MAX_LINES}"
    text = "\n".join(lines)
    assert "make test" in text and "make demo" in text
    assert "](docs/example.jpg)" in text


def library_example():
    text = (REPO / "docs" / "library.md").read_text(encoding="utf-8")
    match = re.search(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert match, "docs/library.md has no ```python block"
    return match.group(1)


def test_library_example_runs(tmp_path):
    import cv2
    from detect_support import make_face_video
    from skimage import data

    code = library_example()
    assert len(code.strip().splitlines()) <= 10, "the library example is meant to be ten lines at most"
    assert cv2.imwrite(str(tmp_path / "photo.jpg"), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    make_face_video(tmp_path / "entrance.mp4")
    (tmp_path / "example.py").write_text(code, encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    lines = done.stdout.splitlines()
    assert any(line.startswith(("without_mask", "with_mask")) for line in lines), done.stdout
    assert any(line.startswith("verdict") for line in lines), done.stdout
    assert any(line.startswith("leave") for line in lines), done.stdout
