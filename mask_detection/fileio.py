"""Safe outputs: atomic writes (a temporary file beside the target, then a rename), groups of files replaced
together, checks made before any slow work (the target is writable, it is none of the run's inputs), and file
names shown safely whatever bytes they hold."""

import contextlib
import errno
import os
import re
import signal
import stat
import tempfile
import threading
from pathlib import Path

from .errors import OutputError

# Signals held back while a group of finished files is renamed into place, so an interrupt cannot leave half
# the group old and half new.
_DEFERRED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def display_path(path):
    """``path`` as printable text: bytes that are not UTF-8 (Linux names are bytes) shown as ``\\xe9`` escapes."""
    return safe_text(os.fspath(path) if not isinstance(path, str) else path)


def safe_text(text):
    """Text that any UTF-8 stream can print: undecodable file-name bytes (lone surrogates) become escapes."""
    text = str(text)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # surrogates that are not escaped bytes
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _default_mode():
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def temporary_path(path, suffix=None):
    """A new, empty temporary file beside ``path`` (hidden, ASCII name, the permissions a plain open() gives).

    The name is plain ASCII on purpose: OpenCV's writers crash on names that are not valid UTF-8.
    ``suffix``: the temporary file's ending (writers such as np.savez, Keras and matplotlib choose the format by
    it); by default the target's own.
    """
    path = Path(path)
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", path.stem)[:40] or "output"
    ending = suffix if suffix is not None else path.suffix
    if not re.fullmatch(r"[.A-Za-z0-9_-]*", ending):
        ending = ""
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.tmp-", suffix=ending, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, _default_mode())  # mkstemp makes the file private (0600)
    return Path(tmp)


def is_stream_target(path):
    """Whether ``path`` names a stream rather than a file to replace: a FIFO, a character device (``/dev/null``,
    a terminal) or a link to one (``/proc/self/fd/1``). Such a target is written into as it is, never replaced
    by a regular file (that would destroy ``/dev/null`` for a root user, and starve a FIFO's reader)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def replaced_path(path):
    """What writing ``path`` replaces: the file a symbolic link points to (the link stays: ``ln -s
    /data/model.keras models/`` remains a link, and ``/dev/stdout`` redirected to a file never becomes a regular
    file in ``/dev``), else the path itself."""
    return Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)


def temporary_for(target, suffix=None):
    """The temporary file a write to ``target`` is made in before it is put in place: beside it, or, for a stream
    target, in the system's temporary folder (``/dev`` takes no new files). The folder beside must exist."""
    target = Path(target)
    folder = Path(tempfile.gettempdir()) if is_stream_target(target) else target.parent
    return temporary_path(folder / target.name, suffix)


def _refuse_special(path):
    """Raise OutputError for an existing target that is neither a regular file, a folder nor a stream (a block
    device, a socket): writing there would destroy what it is, replacing it would destroy its name."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return
    if stat.S_ISBLK(mode):
        raise OutputError(f"refusing to write {display_path(path)}: it is a block device (a disk), not a file")
    if stat.S_ISSOCK(mode):
        raise OutputError(f"cannot write {display_path(path)}: it is a socket, not a file")


def write_to_stream(path, data):
    """Write ``data`` (bytes, or a path whose bytes to copy) into the stream target ``path`` as it is: opened
    for writing without truncating or replacing it. OSError as it is (callers say what failed)."""
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        with open(fd, "wb", buffering=0, closefd=False) as stream:
            if isinstance(data, bytes | bytearray | memoryview):
                _write_all(stream, data)
            else:
                with open(data, "rb") as source:
                    for block in iter(lambda: source.read(1 << 20), b""):
                        _write_all(stream, block)
    finally:
        os.close(fd)


def _write_all(stream, data):
    view = memoryview(data)
    while view:
        view = view[stream.write(view) :]


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    with atomic_paths([path], suffixes=[suffix]) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_paths(paths, suffixes=None):
    """Yield one temporary path per target; if the block succeeds, rename them all onto their targets.

    All files of a group are replaced together or not at all: on any failure (disk full, Ctrl-C, an error) the
    temporaries are removed and every old file is kept. The renames run with interrupts held back. A target that
    is a stream (``is_stream_target``: a FIFO, ``/dev/null``) gets the finished file's bytes written into it
    instead, after the regular files are in place; it is never replaced. The temporary of a stream target is
    made in the system's temporary folder (``/dev`` takes no new files).
    """
    paths = [replaced_path(p) for p in paths]
    suffixes = list(suffixes) if suffixes is not None else [None] * len(paths)
    temporaries = []
    streams = []
    try:
        for path, suffix in zip(paths, suffixes, strict=True):
            _refuse_special(path)
            if is_stream_target(path):
                streams.append(path)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)  # OSError as it is: callers say what failed
            # Held: an interrupt between creating the file and noting it would leave it behind.
            with signals_held():
                temporaries.append(temporary_for(path, suffix))
        yield temporaries
        with signals_held():
            for tmp, path in zip(temporaries, paths, strict=True):
                if path not in streams:
                    os.replace(tmp, path)
        for tmp, path in zip(temporaries, paths, strict=True):
            if path in streams:
                write_to_stream(path, tmp)
    finally:
        for tmp in temporaries:
            with contextlib.suppress(OSError):
                tmp.unlink()


@contextlib.contextmanager
def signals_held():
    """Hold SIGINT/SIGTERM/SIGHUP back for the duration: each one that arrives is noted and delivered again, to the
    handler that was in place, when the block ends (main thread only; elsewhere handlers cannot be set, and
    Python runs them in the main thread anyway).

    Not a signal mask: the process's other threads (TensorFlow's, LiteRT's, tqdm's) would take a masked signal
    and Python would still run its handler in the main thread, inside the block. An ignored signal stays
    ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived = []
    previous = {}
    for signum in _DEFERRED_SIGNALS:
        handler = signal.getsignal(signum)
        if handler is signal.SIG_IGN:
            continue
        previous[signum] = signal.SIG_DFL if handler is None else handler  # None: set outside Python
        signal.signal(signum, lambda number, frame: arrived.append(number))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(arrived):  # each signal once, in the order they came
            signal.raise_signal(signum)


def write_text_atomic(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path, obj):
    import json

    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def check_writable(path, folder=False):
    """Raise OutputError unless ``path`` (a file, or a folder with ``folder=True``) can be written.

    Called before the slow part of a command, so an unwritable target fails at once, not after all the work.
    Creates nothing: the nearest existing ancestor must be a folder in which a file can be created.
    """
    path = Path(path)
    try:
        return _check_writable(path, folder)
    except OSError as exc:  # e.g. a name too long for the file system
        raise OutputError(f"cannot write {display_path(path)}: {exc.strerror or exc}") from None


def _check_writable(path, folder):
    shown = display_path(path)
    _refuse_special(path)
    if not folder and is_stream_target(path):
        if not os.access(path, os.W_OK):
            raise OutputError(f"cannot write {shown}: permission denied")
        return path  # written into as a stream, never replaced
    if path.exists():
        if folder and not path.is_dir():
            raise OutputError(f"cannot write into {shown}: it is a file, not a folder")
        if not folder and path.is_dir():
            raise OutputError(f"cannot write {shown}: it is a folder")
    ancestor = path if folder and path.is_dir() else path.parent
    while not ancestor.exists():
        if ancestor.is_symlink():
            raise OutputError(f"cannot write {shown}: {display_path(ancestor)} is a broken link")
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"cannot write {shown}: {display_path(ancestor)} is not a folder")
    try:
        probe = temporary_path(ancestor / "probe")
    except OSError as exc:
        if exc.errno == errno.ENOENT:  # an existing folder that takes no new files (/proc, /sys)
            raise OutputError(
                f"cannot write {shown}: no new files can be created in {display_path(ancestor)}"
            ) from None
        raise OutputError(f"cannot write {shown}: {display_path(ancestor)}: {exc.strerror or exc}") from None
    probe.unlink()
    return path


def same_file(a, b):
    """Whether two paths name the same file: through links, hard links and other spellings (``d/../d/x``)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare what they would resolve to
        return os.path.realpath(a) == os.path.realpath(b)


def refuse_overwriting_inputs(outputs, inputs):
    """Raise OutputError when any output path is one of the input files or folders (a command never writes over
    its own inputs). ``outputs`` and ``inputs`` are iterables of paths."""
    inputs = [Path(p) for p in inputs]
    for output in outputs:
        for source in inputs:
            if same_file(output, source):
                same = "" if os.fspath(output) == os.fspath(source) else f" ({display_path(source)})"
                if os.path.isdir(source):
                    raise OutputError(
                        f"refusing to write into {display_path(output)}: it is one of this run's "
                        f"input folders{same}, whose files would be read as inputs"
                    )
                raise OutputError(f"refusing to write {display_path(output)}: it is one of this run's inputs{same}")


def sha256_file(path) -> str:
    """Hex sha256 of a file's bytes, read in blocks (model files are tens of MB)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
