"""Events posted to a web address (a webhook), in order, from a thread of its own so a camera never waits for it.

Each event's JSON is POSTed with ``Content-Type: application/json``. A failure that may pass (no connection, a
timeout, HTTP 5xx, 408 or 429) is tried again after a back-off that doubles each time; when the tries run out, or
the server refuses the event (any other status that is not 2xx), one warning says so and the next event goes.
A user name and password in the address (``https://user:secret@host/hook``) are sent as HTTP basic
authentication and never shown in messages.
"""

import base64
import collections
import http.client
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from .. import __version__
from ..errors import MaskDetectionError, exception_line
from ..video_io import display_url
from .records import Event

QUEUE_SIZE = 1000  # events waiting to be posted; beyond it the oldest are dropped (a server down for long)
_RETRY_STATUSES = {408, 429}  # besides 5xx: the server asks to be tried again later


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is a failure: urllib would turn a redirected POST into a GET without the event."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _shown(url: str) -> str:
    """The address as messages show it: no password, and no query (webhook tokens often travel there)."""
    return display_url(url.split("?", 1)[0])


class WebhookSender:
    """POSTs events to ``url`` in the order ``send`` is given them.

    ``retries``: tries after the first; the first waits ``first_delay`` seconds, each next one twice as long.
    ``timeout``: seconds for one request. Counters: ``sent`` (accepted with 2xx), ``failed`` (not delivered:
    given up, refused, dropped from a full queue or left at ``close``), ``dropped`` (of those, dropped from the
    full queue). Warnings go to ``warn`` (from the sender's thread); nothing is printed.
    """

    def __init__(
        self,
        url: str,
        warn: Callable[[str], None],
        retries: int = 5,
        first_delay: float = 0.5,
        timeout: float = 5.0,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        self.shown = _shown(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise MaskDetectionError(f"webhook {self.shown}: use an http:// or https:// address with a host")
        if retries < 0 or first_delay < 0 or timeout <= 0 or queue_size < 1:
            raise MaskDetectionError(
                f"webhook {self.shown}: retries and first delay must be 0 or more, timeout and queue size above 0"
            )
        self.warn = warn
        self.retries = int(retries)
        self.first_delay = float(first_delay)
        self.timeout = float(timeout)
        self.queue_size = int(queue_size)
        self._headers = {"Content-Type": "application/json", "User-Agent": f"mask-detection/{__version__}"}
        if parts.username is not None or parts.password is not None:
            user = urllib.parse.unquote(parts.username or "")
            password = urllib.parse.unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
            host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
            netloc = host if parts.port is None else f"{host}:{parts.port}"
            url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
        self._url = url
        self._opener = urllib.request.build_opener(_NoRedirect)
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._queue: collections.deque[tuple[str, bytes]] = collections.deque()
        self._wake = threading.Condition()
        self._closed = False
        self._deadline: float | None = None  # set by close(): when to stop trying
        self._dropping = False  # a full-queue warning was given and nothing was posted since
        self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        """Events waiting to be posted."""
        with self._wake:
            return len(self._queue)

    def send(self, event: Event) -> None:
        """Queue ``event`` to be posted (its JSON is taken now, so later changes to the dict do not show)."""
        body = json.dumps(event, separators=(",", ":")).encode("utf-8")
        event_id = str(event.get("id"))
        with self._wake:
            if self._closed:
                self.failed += 1
                return
            if len(self._queue) >= self.queue_size:
                dropped_id, _ = self._queue.popleft()
                self.dropped += 1
                self.failed += 1
                if not self._dropping:
                    self._dropping = True
                    self.warn(
                        f"webhook {self.shown}: {self.queue_size} events are waiting; dropping the oldest "
                        f"(from event {dropped_id} on) until the server takes them"
                    )
            self._queue.append((event_id, body))
            self._wake.notify_all()

    def close(self, timeout: float = 5.0) -> None:
        """Post what is queued within ``timeout`` seconds, then stop; what is left is counted as failed."""
        with self._wake:
            if not self._closed:
                self._closed = True
                self._deadline = time.monotonic() + max(0.0, timeout)
            deadline = self._deadline
            self._wake.notify_all()
        assert deadline is not None
        self._thread.join(max(0.0, deadline - time.monotonic()))
        with self._wake:
            left = len(self._queue)
            self._queue.clear()
            self.failed += left
        if left:
            self.warn(f"webhook {self.shown}: {left} event(s) not posted before shutdown")

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if not self._queue:
                    return  # closed and drained
                if self._deadline is not None and time.monotonic() >= self._deadline:
                    return  # close() counts what is left
                event_id, body = self._queue.popleft()
            self._deliver(event_id, body)

    def _deliver(self, event_id: str, body: bytes) -> None:
        delay = self.first_delay
        tries = 0
        while True:
            tries += 1
            problem, again = self._post(body)
            if problem is None:
                with self._wake:
                    self.sent += 1
                    self._dropping = False
                return
            if not again or tries > self.retries:
                break
            if not self._pause(delay):
                problem += "; stopped at shutdown"
                break
            delay *= 2
        with self._wake:
            self.failed += 1
        tried = f"after {tries} tries" if tries > 1 else "at once"
        self.warn(f"webhook {self.shown}: gave up on event {event_id} {tried}: {problem}")

    def _post(self, body: bytes) -> tuple[str | None, bool]:
        """One POST: (None, _) when accepted, else (what went wrong, whether to try again)."""
        request = urllib.request.Request(self._url, data=body, headers=self._headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read()
            return None, False
        except urllib.error.HTTPError as exc:
            exc.close()
            again = exc.code >= 500 or exc.code in _RETRY_STATUSES
            return f"HTTP {exc.code} {exc.reason}", again
        except urllib.error.URLError as exc:
            return exception_line(exc.reason if isinstance(exc.reason, BaseException) else exc), True
        except (OSError, http.client.HTTPException) as exc:  # a timeout, a connection reset, a bad response
            return exception_line(exc), True

    def _pause(self, seconds: float) -> bool:
        """Wait out a back-off; False when ``close``'s deadline passes first."""
        end = time.monotonic() + seconds
        with self._wake:
            while True:
                now = time.monotonic()
                if self._deadline is not None and now >= self._deadline:
                    return False
                if now >= end:
                    return True
                limit = end if self._deadline is None else min(end, self._deadline)
                self._wake.wait(limit - now)  # woken early by send() or close(): look again
