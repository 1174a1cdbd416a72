"""Shared test helpers: the repository root on sys.path and a way to run the top-level scripts."""

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
