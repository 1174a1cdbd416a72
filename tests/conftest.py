"""Shared test helpers: the commands run in-process, the top-level scripts run as real processes.

The package is imported as installed (`make install` installs it editable), not through the repository on
sys.path.
"""

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The commands quiet FFmpeg (images.quiet_opencv_logs) before their first video; FFmpeg reads the level once, at
# its first use, which in-process tests reach earlier (writing test videos): the same level from the start.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def run_command(module, *args):
    """A command's ``main`` in-process, the way its console script runs it (errors as one line, the exit code);
    returns the exit code. Read what it printed with pytest's capfd. Signal handlers are restored afterwards."""
    from mask_detection.commands import common

    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        common.run(module.main, [str(a) for a in args])
    except SystemExit as exc:
        return exc.code
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    raise AssertionError("common.run returned without exiting")


def run_script(script, *args, env=None, cwd=None, timeout=600, input=None):
    """Run a top-level script with this interpreter; returns the CompletedProcess (text mode)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, str(REPO / script), *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or REPO,
        timeout=timeout,
        input=input,
    )


@contextlib.contextmanager
def small_disk(folder, size):
    """A real, small file system (tmpfs of ``size``, e.g. "2m") mounted on ``folder`` for the duration, to fill up.

    Mounting needs root; where it is not allowed the test is skipped with the reason.
    """
    import pytest

    folder.mkdir(exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip() or 'mount failed'}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)
