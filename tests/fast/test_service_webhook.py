"""The webhook: events POSTed in order to a real loopback HTTP server that fails on request, retried with a
doubling back-off, given up with one warning, a bounded queue, a draining close and no password in messages."""

import base64
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from mask_detection.errors import MaskDetectionError
from mask_detection.service.webhook import WebhookSender

WAIT = 60.0  # safety net only: every wait ends as soon as what it waits for is seen


class Hook:
    """A real HTTP server on a free loopback port: answers ``statuses`` in turn (then 200), records each request."""

    def __init__(self, statuses=(), hold: threading.Event | None = None) -> None:
        self.statuses = list(statuses)
        self.hold = hold  # when given, each request waits for it before being answered
        self.requests: list[dict] = []  # arrival time (monotonic), body, headers, answer
        self.changed = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with hook.changed:
                    status = hook.statuses.pop(0) if hook.statuses else 200
                    hook.requests.append(
                        {"time": time.monotonic(), "body": body, "headers": dict(self.headers), "status": status}
                    )
                    hook.changed.notify_all()
                if hook.hold is not None:
                    hook.hold.wait(WAIT)
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        # A short poll: shutdown() waits for it.
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def wait_for(self, condition) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: condition(self.requests), WAIT), self.requests

    def accepted(self) -> list[str]:
        with self.changed:
            return [json.loads(r["body"])["id"] for r in self.requests if 200 <= r["status"] < 300]

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()


class Warnings:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.changed = threading.Condition()

    def __call__(self, line: str) -> None:
        with self.changed:
            self.lines.append(line)
            self.changed.notify_all()

    def wait_for(self, count: int) -> list[str]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.lines) >= count, WAIT), self.lines
            return list(self.lines)


def event(number: int) -> dict:
    return {"id": f"door-run-{number:06d}", "type": "verdict", "camera": "door", "alert": True}


def ok_count(count):
    return lambda requests: sum(200 <= r["status"] < 300 for r in requests) >= count


def wait_until(condition) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def hooks():
    made = []

    def make(*args, **kwargs):
        made.append(Hook(*args, **kwargs))
        return made[-1]

    yield make
    for hook in made:
        hook.close()


def free_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_events_are_posted_in_order_and_failures_retried_with_a_doubling_back_off(hooks):
    hook = hooks([503, 503, 502])
    warnings = Warnings()
    sender = WebhookSender(hook.url, warnings, retries=5, first_delay=0.02)
    for number in (1, 2, 3):
        sender.send(event(number))
    hook.wait_for(ok_count(3))
    assert hook.accepted() == [event(n)["id"] for n in (1, 2, 3)]
    requests = hook.requests
    assert [json.loads(r["body"]) for r in requests] == [event(1)] * 4 + [event(2), event(3)]
    assert requests[0]["headers"]["Content-Type"] == "application/json"
    # Each try waits at least its back-off after the answer before: 0.02, 0.04, 0.08 seconds.
    gaps = [later["time"] - earlier["time"] for earlier, later in zip(requests[:3], requests[1:4], strict=True)]
    assert all(gap >= 0.02 * 2**i for i, gap in enumerate(gaps)), gaps
    sender.close(WAIT)
    assert (sender.sent, sender.failed, warnings.lines) == (3, 0, [])


def test_after_its_retries_an_event_is_given_up_with_one_warning_and_the_next_goes(hooks):
    hook = hooks([503, 503, 503])
    warnings = Warnings()
    sender = WebhookSender(hook.url, warnings, retries=2, first_delay=0.01)
    sender.send(event(1))
    sender.send(event(2))
    hook.wait_for(ok_count(1))
    assert [json.loads(r["body"])["id"] for r in hook.requests] == [event(n)["id"] for n in (1, 1, 1, 2)]
    assert hook.accepted() == [event(2)["id"]]
    assert len(warnings.lines) == 1
    assert f"gave up on event {event(1)['id']} after 3 tries: HTTP 503" in warnings.lines[0]
    sender.close(WAIT)
    assert (sender.sent, sender.failed) == (1, 1)


def test_a_refused_connection_is_retried_then_given_up(hooks):
    warnings = Warnings()
    sender = WebhookSender(f"http://127.0.0.1:{free_port()}/hook", warnings, retries=2, first_delay=0.01)
    sender.send(event(1))
    (line,) = warnings.wait_for(1)
    assert f"gave up on event {event(1)['id']} after 3 tries" in line
    assert "refused" in line.lower()
    wait_until(lambda: sender.failed == 1)
    sender.close(WAIT)
    assert sender.sent == 0


@pytest.mark.parametrize("status", [400, 404, 302, 303, 307])
def test_an_event_the_server_refuses_or_redirects_is_not_retried(hooks, status):
    hook = hooks([status])
    warnings = Warnings()
    sender = WebhookSender(hook.url, warnings, retries=5, first_delay=0.01)
    sender.send(event(1))
    sender.send(event(2))
    hook.wait_for(ok_count(1))
    assert [r["status"] for r in hook.requests] == [status, 200]
    (line,) = warnings.lines
    assert f"gave up on event {event(1)['id']} at once: HTTP {status}" in line
    sender.close(WAIT)
    assert (sender.sent, sender.failed) == (1, 1)


def test_a_full_queue_drops_the_oldest_with_one_warning(hooks):
    release = threading.Event()
    hook = hooks(hold=release)
    warnings = Warnings()
    sender = WebhookSender(hook.url, warnings, queue_size=3, first_delay=0.01)
    sender.send(event(0))
    hook.wait_for(lambda requests: len(requests) == 1)  # the sender is busy with event 0
    for number in range(1, 6):
        sender.send(event(number))
    assert sender.backlog == 3
    assert (sender.dropped, sender.failed) == (2, 2)
    (line,) = warnings.lines
    assert "dropping the oldest" in line and event(1)["id"] in line
    release.set()
    hook.wait_for(ok_count(4))
    assert hook.accepted() == [event(n)["id"] for n in (0, 3, 4, 5)]
    sender.close(WAIT)
    assert sender.sent == 4


def test_close_posts_what_is_queued(hooks):
    hook = hooks([503])
    sender = WebhookSender(hook.url, Warnings(), first_delay=0.01)
    for number in range(5):
        sender.send(event(number))
    sender.close(WAIT)
    assert sender.sent == 5  # close returned once all were posted
    assert hook.accepted() == [event(n)["id"] for n in range(5)]
    sender.send(event(9))  # after close: not posted, counted
    assert (sender.sent, sender.failed) == (5, 1)


def test_close_stops_trying_at_its_deadline(hooks):
    warnings = Warnings()
    sender = WebhookSender(f"http://127.0.0.1:{free_port()}/hook", warnings, retries=1000, first_delay=0.01)
    for number in range(3):
        sender.send(event(number))
    sender.close(0.2)
    wait_until(lambda: sender.failed == 3)
    assert sender.sent == 0
    assert any("stopped at shutdown" in line or "not posted before shutdown" in line for line in warnings.lines)


def test_a_password_in_the_address_is_sent_as_basic_auth_and_never_shown(hooks):
    hook = hooks([400])
    warnings = Warnings()
    url = hook.url.replace("http://", "http://alice:s3cr%40t@") + "?token=abcdef"
    sender = WebhookSender(url, warnings, first_delay=0.01)
    sender.send(event(1))
    (line,) = warnings.wait_for(1)
    sender.close(WAIT)
    assert hook.requests[0]["headers"]["Authorization"] == "Basic " + base64.b64encode(b"alice:s3cr@t").decode()
    assert "alice:***@127.0.0.1" in line
    assert "s3cr" not in line and "abcdef" not in line
    assert "s3cr" not in sender.shown


@pytest.mark.parametrize("url", ["ftp://host/hook", "not an address", "http:///no-host"])
def test_an_address_that_is_not_http_is_refused(url):
    with pytest.raises(MaskDetectionError, match="http:// or https://"):
        WebhookSender(url, Warnings())
