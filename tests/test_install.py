"""The package installs with pip and works from any working directory: console scripts, shipped models, YuNet."""

import json
import os
import subprocess
import sys

from conftest import REPO


def test_pip_install_gives_console_scripts_that_find_the_shipped_models(tmp_path):
    target = tmp_path / "site"
    # --no-build-isolation: the build backend comes from the test environment (pinned), nothing is downloaded.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}

    def installed(*argv):
        """Python on ``argv`` with the installed copy on the path, from a folder that is not the checkout."""
        return subprocess.run(
            [sys.executable, *map(str, argv)], capture_output=True, text=True, cwd=elsewhere, env=env, timeout=300
        )

    where = installed("-c", "import mask_detection, sys; print(mask_detection.__file__)").stdout
    assert where.startswith(str(target))  # the installed copy, not the source tree
    result = installed(
        target / "bin" / "mask-detect-image", "--demo", "--json", "--no-display", "--output", "astronaut.jpg"
    )
    assert result.returncode == 0, result.stderr
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["faces"][0]["label"] == "without_mask"  # the shipped classifier, on YuNet's face
    assert (elsewhere / "astronaut.jpg").is_file()
    # The service's page is package data too: served from the installed copy.
    page = installed("-c", "from mask_detection.service.app import _static; print(len(_static('index.html')))").stdout
    assert int(page) > 1000
    for command in ("mask-loader", "mask-train", "mask-detect-webcam", "mask-export", "mask-evaluate", "mask-serve"):
        shown = installed(target / "bin" / command, "--help")
        assert shown.returncode == 0 and "usage:" in shown.stdout, shown.stderr
