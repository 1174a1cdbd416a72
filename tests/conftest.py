"""Shared test helpers: the repository root on sys.path and a way to run the top-level scripts."""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def run_script(script, *args, env=None, cwd=None, timeout=600, input=None):
    """Run a top-level script with this interpreter; returns the CompletedProcess (text mode)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, str(REPO / script), *map(str, args)],
        capture_output=True, text=True, env=full_env, cwd=cwd or REPO, timeout=timeout, input=input,
    )


@contextlib.contextmanager
def small_disk(folder, size):
    """A real, small file system (tmpfs of ``size``, e.g. "2m") mounted on ``folder`` for the duration, to fill up.

    Mounting needs root; where it is not allowed the test is skipped with the reason.
    """
    import pytest

    folder.mkdir(exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip() or 'mount failed'}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)
