"""Atomic writes: a temporary file in the target folder, then a rename, so no half-written output."""

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    ``suffix`` is the temporary file's ending (some writers pick the format from it, e.g. ``.png``,
    ``.keras``); by default the target's own suffix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name keeps the real ending: np.savez, Keras and matplotlib choose by it.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.tmp-", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    # mkstemp makes the file private (0600); give it the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path, obj):
    import json

    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
