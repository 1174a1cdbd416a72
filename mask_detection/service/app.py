"""The service's HTTP side (FastAPI): the page, the live video, the events and the photo check.

The same app serves one camera (``mask-serve``) and every camera of a fleet (``mask-serve dashboard``): it reads
cameras and events from a ``hub.Hub`` and an ``store.EventStore``, whoever fills them. Every error is a JSON object
``{"error": "..."}`` with a 4xx or 5xx status, and the server goes on serving.
"""

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from .. import __version__
from ..errors import ImageDecodeError
from .hub import Hub
from .metrics import render_metrics
from .records import Event
from .security import DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_MAX_UPLOAD_PIXELS, TOKEN_COOKIE, token_matches
from .store import EventStore

MJPEG_BOUNDARY = "frame"
MAX_EVENTS_PAGE = 500
REPLAY_LIMIT = 1000  # events a reconnecting event stream catches up with (Last-Event-ID)
STATE_SECONDS = 1.0  # how often the event stream sends the cameras' states when they changed
UPLOAD_OVERHEAD = 64 * 1024  # bytes of multipart framing allowed around an upload

# (photo bytes, name, max pixels) -> the JSON of ``detect_image.py --json``; raises ImageDecodeError.
Classify = Callable[[bytes, str, int], dict[str, Any]]

log = logging.getLogger("mask_detection.service")

TOKEN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Mask detection: token needed</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head><body style="font-family: sans-serif;
margin: 2em"><h1>This server needs its token</h1><p>Open this page as <code>/?token=TOKEN</code>, with the token
from the server's <code>--token-file</code>. The address is then cleaned of it.</p></body></html>
"""


@dataclass
class AppSettings:
    token: str | None = None  # every request needs it (header, cookie or ?token=) when set
    cors_origins: list[str] = field(default_factory=list)  # no CORS headers at all when empty
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_upload_pixels: int = DEFAULT_MAX_UPLOAD_PIXELS
    dashboard: bool = False  # the page shows every camera


def event_json(event: Event) -> Event:
    """An event as the API hands it out: with the address of its snapshot (null without one)."""
    out = dict(event)
    out["snapshot_url"] = f"/api/events/{event['id']}/snapshot.jpg" if event.get("has_snapshot") else None
    return out


def camera_json(hub: Hub, name: str) -> dict[str, Any]:
    view = hub.camera(name)
    return {
        "name": view.name,
        "source": view.source,
        "status": view.state.get("status", "starting"),
        "state": view.state,
        "events": dict(view.events),
        "errors": view.errors,
        "latest_url": f"/api/cameras/{name}/latest.jpg",
        "stream_url": f"/api/cameras/{name}/stream.mjpeg",
    }


class TokenGate:
    """ASGI middleware: with a token set, every request must carry it (``Authorization: Bearer``, the page's
    cookie, or ``?token=``). The page opened with ``?token=`` sets the cookie and is sent on without it."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.token is None:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = query.get("token", [None])[0]
        bearer = headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            given = bearer[7:].strip()
        if given is None and "cookie" in headers:
            morsel = SimpleCookie(headers["cookie"]).get(TOKEN_COOKIE)
            given = morsel.value if morsel is not None else None
        if not token_matches(self.token, given):
            if scope["path"] in ("/", "/entrance"):  # a person with a browser: a page that says what to do
                await _send(send, 401, "text/html; charset=utf-8", TOKEN_PAGE.encode())
                return
            await _send_json(
                send,
                401,
                {"error": "this server needs its token: open /?token=TOKEN, or send 'Authorization: Bearer TOKEN'"},
            )
            return
        if scope["method"] == "GET" and "token" in query and scope["path"] in ("/", "/entrance"):
            # Keep the token out of the address bar, history and screenshots: a cookie for the page's requests.
            cookie = f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
            await send(
                {
                    "type": "http.response.start",
                    "status": 303,
                    "headers": [(b"location", scope["path"].encode()), (b"set-cookie", cookie.encode())],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, send)


async def _send_json(send: Any, status: int, body: dict) -> None:
    await _send(send, status, "application/json", json.dumps(body).encode())


async def _send(send: Any, status: int, content_type: str, data: bytes) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def _static(name: str) -> bytes:
    return resources.files("mask_detection.service").joinpath("static").joinpath(name).read_bytes()


def create_app(hub: Hub, store: EventStore, settings: AppSettings, classify: Classify | None = None) -> Any:
    """The FastAPI application over ``hub`` and ``store``; ``classify``: the photo check (None: 503)."""
    from fastapi import FastAPI, HTTPException, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
    from fastapi.sse import EventSourceResponse, ServerSentEvent
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app = FastAPI(
        title="Mask detection",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such address: {request.url.path}"
        return JSONResponse({"error": message}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"error": f"bad request: {problems}"}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed: %r", request.method, request.url.path, exc)
        return JSONResponse({"error": "internal error"}, status_code=500)

    page = {"cache-control": "no-store"}

    @app.get("/", include_in_schema=False)
    @app.get("/entrance", include_in_schema=False)
    def index() -> Response:
        return Response(_static("index.html"), media_type="text/html; charset=utf-8", headers=page)

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png"}
        suffix = name[name.rfind(".") :] if "." in name else ""
        if "/" in name or name.startswith(".") or suffix not in types:
            raise HTTPException(404, f"no such file: {name}")
        try:
            return Response(_static(name), media_type=types[suffix], headers=page)
        except FileNotFoundError:
            raise HTTPException(404, f"no such file: {name}") from None

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        cameras = hub.status()
        ok = all(status in ("live", "ended") for status in cameras.values())
        answer: dict[str, Any] = {"status": "ok", "version": __version__, "cameras": cameras}
        if hub.broker is not None:
            answer["mqtt"] = {"broker": hub.broker.settings.broker, "connected": bool(hub.broker.connected)}
            if hasattr(hub.broker, "backlog"):
                answer["mqtt"]["backlog"] = int(hub.broker.backlog)
            ok = ok and answer["mqtt"]["connected"]
        answer["status"] = "ok" if ok else "degraded"
        return answer

    @app.get("/api/cameras")
    def cameras() -> dict[str, Any]:
        return {"cameras": [camera_json(hub, view.name) for view in hub.cameras()]}

    def known(name: str) -> Any:
        view = hub.find(name)
        if view is None:
            raise HTTPException(404, f"no camera named {name!r}")
        return view

    @app.get("/api/cameras/{name}/latest.jpg")
    def latest(name: str) -> Response:
        _, jpeg = known(name).feed.latest()
        if jpeg is None:
            raise HTTPException(503, f"camera {name!r} has no frame yet")
        return Response(jpeg, media_type="image/jpeg", headers=page)

    @app.get("/api/cameras/{name}/stream.mjpeg")
    async def stream(name: str) -> StreamingResponse:
        feed = known(name).feed

        async def parts() -> AsyncIterator[bytes]:
            feed.viewers += 1  # the camera encodes every frame while someone watches
            try:
                sequence = -1
                while True:
                    sequence, jpeg = await feed.next_after(sequence, 5.0)
                    if jpeg is None:
                        continue
                    head = f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                    yield head.encode() + jpeg + b"\r\n"
            finally:
                feed.viewers -= 1

        return StreamingResponse(
            parts(), media_type=f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}", headers=page
        )

    @app.get("/api/events")
    def events(
        camera: str | None = None,
        label: str | None = None,
        type: str | None = None,
        after: int | None = Query(None, ge=0),
        before: int | None = Query(None, ge=1),
        limit: int = Query(50, ge=1, le=MAX_EVENTS_PAGE),
    ) -> dict[str, Any]:
        """Newest first; the next older page: ``before=next_before``; only newer ones: ``after=SEQ``."""
        found = store.events(camera=camera, label=label, type=type, after=after, before=before, limit=limit)
        next_before = found[-1]["seq"] if len(found) == limit else None
        return {"events": [event_json(e) for e in found], "next_before": next_before}

    @app.get("/api/events/stream", response_class=EventSourceResponse)
    async def event_stream(
        request: Request, camera: str | None = None, label: str | None = None, type: str | None = None
    ) -> AsyncIterator[ServerSentEvent]:
        """Server-Sent Events: "event" (each stored event, id = its seq, so a reconnecting browser catches up
        from Last-Event-ID) and "state" (every camera's state, when it changed)."""

        def wanted(event: Event) -> bool:
            after = event.get("after") or {}
            return (
                (camera is None or event["camera"] == camera)
                and (label is None or after.get("label") == label)
                and (type is None or event["type"] == type)
            )

        queue = hub.bus.subscribe()
        try:
            last = request.headers.get("last-event-id", "")
            if last.isdigit():
                missed = store.events(camera=camera, label=label, type=type, after=int(last), limit=REPLAY_LIMIT)
                for event in reversed(missed):
                    yield ServerSentEvent(data=event_json(event), event="event", id=str(event["seq"]))
            states: Any = None
            summary: Any = None
            checked = -STATE_SECONDS
            while True:
                # States at most once a STATE_SECONDS, but at once when what the page shows big changes (an alert,
                # a camera's health, who is in view): a busy fleet's events must not each bring every state along.
                now = hub.clock()
                glance = [
                    (v.name, v.state.get("status"), v.state.get("alert"), v.state.get("in_view")) for v in hub.cameras()
                ]
                if glance != summary or now - checked >= STATE_SECONDS:
                    summary, checked = glance, now
                    current = [camera_json(hub, view.name) for view in hub.cameras()]
                    if current != states:
                        states = current
                        yield ServerSentEvent(data={"cameras": current}, event="state")
                try:
                    item = await asyncio.wait_for(queue.get(), STATE_SECONDS)
                except TimeoutError:
                    continue
                if item is None:
                    return  # fell too far behind: the browser reconnects and catches up from the store
                if wanted(item):
                    seq = item.get("seq")
                    yield ServerSentEvent(data=event_json(item), event="event", id=None if seq is None else str(seq))
        finally:
            hub.bus.unsubscribe(queue)

    @app.get("/api/events/{event_id}/snapshot.jpg")
    def snapshot(event_id: str) -> FileResponse:
        path = store.snapshot_path(event_id)
        if path is None:
            raise HTTPException(404, f"no snapshot for event {event_id!r}")
        return FileResponse(path, media_type="image/jpeg")

    @app.post("/api/classify")
    async def classify_photo(request: Request) -> JSONResponse:
        """A photo in (the request body, or a multipart form's file), the faces found and their labels out."""
        if classify is None:
            raise HTTPException(503, "this server has no classifier")
        try:
            data, name = await _read_upload(request, settings.max_upload_bytes)
            result = await run_in_threadpool(classify, data, name, settings.max_upload_pixels)
        except HTTPException:
            hub.rejected_uploads += 1
            raise
        except ImageDecodeError as exc:
            hub.rejected_uploads += 1
            raise HTTPException(400, str(exc)) from None
        hub.classified += 1
        return JSONResponse(result)

    @app.get("/metrics")
    def metrics() -> Response:
        body, content_type = render_metrics(hub)
        return Response(body, media_type=content_type)

    served: Any = app
    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        served = CORSMiddleware(
            served,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        )
    return TokenGate(served, settings.token)


async def _read_upload(request: Any, limit: int) -> tuple[bytes, str]:
    """The uploaded photo's bytes and name. The body is counted as it arrives (also a chunked one that announces
    no length) and refused past ``limit`` (plus a form's own bytes around the photo), before it is all read."""
    from fastapi import HTTPException
    from starlette.datastructures import UploadFile
    from starlette.requests import Request

    too_big = HTTPException(413, f"the upload is larger than {limit:,} bytes")
    # A body a little too big is read to its end (and dropped) before the answer, so the client, still sending,
    # gets the 413 rather than a broken connection; a far bigger one is cut off at once.
    drain_limit = 4 * limit + UPLOAD_OVERHEAD
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > drain_limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > drain_limit:
            raise too_big
        if size <= limit + UPLOAD_OVERHEAD:
            chunks.append(chunk)
    if size > limit + UPLOAD_OVERHEAD:
        raise too_big
    body = b"".join(chunks)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):

        async def replay() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(request.scope, replay).form(max_files=1, max_fields=10)
        except HTTPException:
            raise
        except Exception as exc:  # a malformed form
            raise HTTPException(400, f"cannot read the form: {exc}") from None
        files = [value for value in form.values() if isinstance(value, UploadFile)]
        if not files:
            raise HTTPException(400, "the form has no file: send the photo as a file field (e.g. -F image=@photo.jpg)")
        data, name = await files[0].read(), files[0].filename or "upload"
    else:
        data, name = body, request.query_params.get("name", "upload")
    if len(data) > limit:
        raise too_big
    if not data:
        raise HTTPException(400, "the upload is empty: send a photo (JPEG, PNG, ...)")
    return data, name
