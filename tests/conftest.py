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


# ---------------------------------------------------------------------- events instead of times, for real processes
#
# A test that sends a signal "soon after start" or waits "long enough" passes or fails with the machine's load.
# The helpers below run a command as a real process with one of its functions patched, so that the signal (or
# a wait) happens at a chosen step of the program, on every run, on any machine.

SCRIPT_COMMANDS = {
    "detect_image.py": "detect_image",
    "detect_webcam.py": "detect_webcam",
    "train_model.py": "train",
    "loader.py": "loader",
    "evaluate.py": "evaluate",
    "export_model.py": "export",
    "serve.py": "serve",
}

_HOOK_HELPERS = r'''
import contextlib, importlib, os, signal, sys, types


def _on_call(target, action, call=1, when="before", match=None):
    """Patch ``target`` ("module:attribute.path") so that its ``call``-th call (counting only calls with an
    argument whose text holds ``match``) runs ``action()`` before it, after it, or, for a context manager,
    inside it (once entered). A module's function is patched in its module and in every module of the package
    that imported it by name, so the hook does not depend on which module calls it."""
    module_name, _, path = target.partition(":")
    owner = importlib.import_module(module_name)
    *parents, name = path.split(".")
    for part in parents:
        owner = getattr(owner, part)
    real = getattr(owner, name)
    seen = [0]

    def due(args, kwargs):
        if match is not None and not any(match in str(a) for a in (*args, *kwargs.values())):
            return False
        seen[0] += 1
        return seen[0] == call

    if when == "inside":

        @contextlib.contextmanager
        def hooked(*args, **kwargs):
            now = due(args, kwargs)
            with real(*args, **kwargs) as value:
                if now:
                    action()
                yield value

    else:

        def hooked(*args, **kwargs):
            now = due(args, kwargs)
            if now and when == "before":
                action()
            result = real(*args, **kwargs)
            if now and when == "after":
                action()
            return result

    setattr(owner, name, hooked)
    if isinstance(owner, types.ModuleType):
        for module in list(sys.modules.values()):
            if getattr(module, "__name__", "").startswith("mask_detection") and getattr(module, name, None) is real:
                setattr(module, name, hooked)


def _send(signum):
    """An action: ``signum`` sent to this process (by the thread running the hook, as ``kill`` would)."""
    return lambda: os.kill(os.getpid(), signum)


# Every Python-level signal handler installed from here on notes that it ran, so that a hook can wait for that.
_handled = []
_real_signal = signal.signal


def _noting_signal(signum, handler):
    if callable(handler):
        inner = handler

        def handler(number, frame):
            _handled.append(number)
            return inner(number, frame)

    return _real_signal(signum, handler)


signal.signal = _noting_signal


def _send_and_wait(signum, patience):
    """An action: ``signum`` sent to this process, then a wait until a Python handler has run for it. A process
    with other threads (TensorFlow's) has the kernel hand a signal that the calling thread blocks to one of them,
    at a moment its scheduling decides; waiting for the handler makes that moment this one, on every machine.
    ``patience`` (seconds) bounds the wait for a signal that is rightly held pending until later."""

    def action():
        import time

        _handled.clear()
        os.kill(os.getpid(), signum)
        give_up = time.monotonic() + patience
        while not _handled and time.monotonic() < give_up:
            time.sleep(0.001)

    return action
'''


def on_call(target, action, call=1, when="before", match=None):
    """Python source for a hook (see ``hooked_script``): ``target`` ("module:attribute.path") patched so that its
    ``call``-th call (counting only calls with an argument whose text holds ``match``) runs ``action`` (source of
    a function of no arguments, e.g. ``send_signal(signal.SIGTERM)``) ``when``: "before" or "after" the real
    call, or "inside" it once entered (for a context manager)."""
    if when not in ("before", "after", "inside"):
        raise ValueError(f"when must be before, after or inside, not {when!r}")
    return f"_on_call({target!r}, {action}, call={int(call)}, when={when!r}, match={match!r})\n"


def send_signal(signum):
    """The action of a hook that sends ``signum`` to the process itself, at the step the hook is on."""
    return f"_send({int(signum)})"


def send_signal_and_wait_until_handled(signum, patience=10):
    """The action of a hook that sends ``signum`` to the process itself and waits until a Python handler has run
    for it (at most ``patience`` seconds, for a signal held pending, which is then handled later)."""
    return f"_send_and_wait({int(signum)}, {float(patience)!r})"


def hooked_script(script, *args, hooks=(), setup="", hang_up_default=True):
    """The argv of a real process that runs the top-level ``script`` (its command's ``run()``, argv[0] as the
    script's own) with ``args``, after ``setup`` (Python statements, e.g. functions used as actions) and the
    ``hooks`` made by ``on_call``. Run it with ``cwd=REPO``.

    ``hang_up_default``: SIGHUP at its default action, as in a process started from a terminal, whatever the
    test run inherited (under ``nohup``, or a CI runner started so, it is ignored, and so the run would keep it)."""
    module = SCRIPT_COMMANDS[script]
    code = (
        _HOOK_HELPERS
        + ("signal.signal(signal.SIGHUP, signal.SIG_DFL)\n" if hang_up_default else "")
        + setup
        + "\n"
        + f"from mask_detection.commands import {module}\n"
        + "".join(hooks)
        + f"sys.argv = [{script!r}, *{[str(a) for a in args]!r}]\n"
        + f"{module}.run()\n"
    )
    return [sys.executable, "-c", code]


def read_until(proc, predicate, safety_net=600):
    """Lines of ``proc.stdout`` (text) up to and including the first for which ``predicate(line)`` is true.

    The wait is for that line, an event of the program, not for a time. ``safety_net`` (seconds) only keeps a
    hung process from hanging the suite: reaching it, or the end of the output first, kills the process and
    fails the test with what was read. Nothing is read past the line (``communicate()`` gets the rest)."""
    import threading

    import pytest

    seen, found = [], threading.Event()

    def pump():
        for line in proc.stdout:
            seen.append(line)
            if predicate(line):
                found.set()
                return
        found.set()  # the end of the output: not what was waited for

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    if not found.wait(safety_net) or not (seen and predicate(seen[-1])):
        proc.kill()
        reader.join(10)
        pytest.fail(f"the awaited line never came (exit {proc.wait()}); output so far:\n{''.join(seen)}")
    reader.join()
    return seen


@contextlib.contextmanager
def loopback_http_server(handler):
    """An HTTP server on 127.0.0.1 (a free port) answering with ``handler`` on its own thread; yields its base URL."""
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
