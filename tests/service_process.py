"""Helpers for the service's tests: generated entrance videos, a real ``serve.py`` process, HTTP calls."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
from conftest import REPO, read_until
from detect_support import face_photo


def write_entrance_video(path, frames=60, fps=15.0, size=(640, 480), moving=True):
    """A bare face (the astronaut: the shipped classifier calls it no mask) crossing a plain background, or still
    (``moving`` False: the face stays where ``FACE_AT`` says, so a test knows where it is in every frame)."""
    import cv2

    face = face_photo()
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened()
    for i in range(frames):
        canvas = np.full((height, width, 3), 90, np.uint8)
        x = 40 + (i * 4) % (width - face.shape[1] - 80) if moving else FACE_AT[0]
        y = FACE_AT[1]
        canvas[y : y + face.shape[0], x : x + face.shape[1]] = face
        cv2.putText(canvas, str(i), (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)  # frames differ
        writer.write(canvas)
    writer.release()
    return path


FACE_AT = (200, 120)  # (x, y) of the still face's photo in the frame


class Served:
    """A running ``serve.py`` process and its address."""

    def __init__(self, proc, url, store):
        self.proc = proc
        self.url = url.rstrip("/")
        self.store = store

    def get(self, path, headers=None):
        return http("GET", self.url + path, headers=headers)

    def json(self, path, headers=None):
        status, _, body = self.get(path, headers)
        assert status == 200, (path, status, body[:300])
        return json.loads(body)

    def post(self, path, data, headers=None):
        return http("POST", self.url + path, data=data, headers=headers)

    def wait_for(self, what, predicate, safety_net=120, every=0.05):
        """Poll ``predicate()`` (an observed state of the server) until it returns something true; the
        ``safety_net`` only keeps a broken server from hanging the suite."""
        deadline = time.monotonic() + safety_net
        while True:
            value = predicate()
            if value:
                return value
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited ({self.proc.returncode}) while waiting for {what}")
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {what} within the safety net of {safety_net} s")
            time.sleep(every)

    def stop(self, signum=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            out, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"the server did not stop on signal {signum}:\n{err}") from None
        return self.proc.returncode, out, err


def http(method, url, data=None, headers=None, timeout=60):
    """(status, headers, body bytes) of one request; HTTP errors are answers too."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a test looks at the redirect itself


@contextlib.contextmanager
def serving(*args, store, env=None):
    """``serve.py ARGS --port 0 --store STORE``, ready (its "serving ... on URL" line read); stopped at the end."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "serve.py"), *map(str, args), "--port", "0", "--store", str(store)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )
    try:
        lines = read_until(proc, lambda line: line.startswith("serving "), safety_net=300)
        url = lines[-1].split(" on ", 1)[1].split(" ")[0]
        yield Served(proc, url, store)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
