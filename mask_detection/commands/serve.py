"""The entrance service: a live page, an HTTP API and MQTT events for one camera, or a dashboard over a fleet.

python serve.py --video entrance.mp4 --loop                   # http://127.0.0.1:8080/
python serve.py --camera 0 --name front-door --mqtt broker:1883 --webhook http://alarm.local/hook
python serve.py dashboard --mqtt broker:1883 --port 8090      # every camera that publishes to the broker
"""

import argparse
import sys
from pathlib import Path

from ..errors import Interrupted, MaskDetectionError
from . import common as cli
from .detect_webcam import add_judge_size_option, add_source_options, tracking_config

DEFAULT_PORT = 8080
DEFAULT_DASHBOARD_PORT = 8090


def _broker(text: str) -> tuple[str, int]:
    from ..service.mqtt import parse_broker

    try:
        return parse_broker(text)
    except MaskDetectionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _camera_name(text: str) -> str:
    from ..service.records import check_camera_name

    try:
        return check_camera_name(text)
    except MaskDetectionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _origin(text: str) -> str:
    if not text.startswith(("http://", "https://")) or text.count("/") != 2:
        raise argparse.ArgumentTypeError(f"an origin is scheme://host[:port] with nothing after, got {text!r}")
    return text


def _port(text: str) -> int:
    value = cli.non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535, got {text}")
    return value


def _add_server_options(parser: argparse.ArgumentParser, port: int, store: str) -> None:
    web = parser.add_argument_group("web server")
    web.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only; any other address needs --token-file)",
    )
    web.add_argument("--port", type=_port, default=port, help="port (default: %(default)s; 0: any free port)")
    web.add_argument(
        "--token-file",
        type=cli.non_empty_path,
        metavar="PATH",
        help="a file holding the access token (at least 16 characters): every API call then needs "
        "'Authorization: Bearer TOKEN', and the page is opened once as /?token=TOKEN",
    )
    web.add_argument(
        "--cors-origin",
        action="append",
        type=_origin,
        default=[],
        metavar="ORIGIN",
        help="let pages from this origin (https://host:port) call the API from a browser; repeatable (default: none)",
    )
    web.add_argument(
        "--max-upload-mb",
        type=cli.positive_float,
        default=20.0,
        metavar="MB",
        help="largest photo POST /api/classify accepts (default: %(default)s)",
    )
    web.add_argument(
        "--max-upload-pixels",
        type=cli.positive_int,
        default=50_000_000,
        metavar="N",
        help="largest photo in pixels; bigger ones (a decompression bomb) are refused before decoding "
        "(default: %(default)s)",
    )
    keep = parser.add_argument_group("events")
    keep.add_argument(
        "--store",
        type=cli.non_empty_path,
        default=store,
        metavar="DIR",
        help="folder of the event store (SQLite), the snapshots and the MQTT outbox (default: %(default)s)",
    )
    keep.add_argument(
        "--keep-days",
        type=cli.positive_float,
        default=7.0,
        metavar="DAYS",
        help="events and snapshots older than this are removed (default: %(default)s)",
    )
    mqtt = parser.add_argument_group("MQTT")
    mqtt.add_argument("--mqtt", type=_broker, metavar="HOST:PORT", help="the MQTT broker (e.g. Mosquitto)")
    mqtt.add_argument(
        "--mqtt-prefix", default="mask_detection", metavar="PREFIX", help="topic prefix (default: %(default)s)"
    )
    mqtt.add_argument("--mqtt-user", metavar="NAME", help="user name on the broker")
    mqtt.add_argument(
        "--mqtt-password-file",
        type=cli.non_empty_path,
        metavar="PATH",
        help="a file holding the broker password (never on the command line, where other users can see it)",
    )
    mqtt.add_argument(
        "--mqtt-client-id",
        metavar="ID",
        help="base of the MQTT client ids (ID-CAMERA, ID-dashboard; default: the prefix): give two dashboards "
        "on one broker different ones",
    )
    mqtt.add_argument("--mqtt-tls", action="store_true", help="connect with TLS (the system's trusted certificates)")
    mqtt.add_argument(
        "--mqtt-ca",
        type=cli.non_empty_path,
        metavar="PATH",
        help="TLS: the broker's CA certificate (implies --mqtt-tls)",
    )


def parse_camera_args(argv: list[str]) -> argparse.Namespace:
    parser = cli.ArgumentParser(
        prog="serve.py",
        description=(
            "Serve one camera's live mask check: a web page (the annotated video, people in view, mask / no mask "
            "counts, the alert banner, recent people without a mask with their snapshot; /entrance: a full-screen "
            "view for a monitor at the door), an HTTP API, and optionally MQTT events and a webhook. "
            "'serve.py dashboard --help': one page over every camera of a fleet, through the broker."
        ),
        epilog=(
            "API: GET /api/health, /api/cameras, /api/cameras/NAME/latest.jpg, /api/cameras/NAME/stream.mjpeg, "
            "/api/events?camera=&label=&type=&after=&before=&limit= (newest first; next page: before=next_before), "
            "/api/events/stream (Server-Sent Events), /api/events/ID/snapshot.jpg, POST /api/classify (a photo as "
            "the body or a form file: the JSON of detect_image.py --json), GET /metrics (Prometheus). "
            "Events: new (a person appears), verdict (settled or changed), leave; each with before and after, "
            "stored once in SQLite with an id that never repeats (docs/service.md, docs/schemas/). An alert is "
            "a person without a mask: one per person, at most one per --alert-cooldown, POSTed to --webhook "
            "(retried with back-off). MQTT topics PREFIX/NAME/events, /state, /availability, Home Assistant "
            "discovery; events go through a local outbox, so a broker outage loses none. "
            "A stream that stops delivering frames is reported stalled, then offline, and reopened. "
            "Exit status: 0 stopped with Ctrl-C, 2 cannot start (bad option, port in use, model, store), "
            "143 / 129 stopped by SIGTERM / SIGHUP."
        ),
    )
    add_source_options(parser)
    parser.add_argument(
        "--name",
        type=_camera_name,
        default="camera",
        help="the camera's name in topics, URLs and events: lower-case letters, digits, - and _ (default: %(default)s)",
    )
    parser.add_argument("--loop", action="store_true", help="a video file starts again at its end")
    parser.add_argument(
        "--fast",
        action="store_true",
        help="process a video file as fast as it decodes (default: at its frame rate, like a camera)",
    )
    parser.add_argument(
        "--max-frames",
        type=cli.positive_int,
        metavar="N",
        help="stop the camera after N frames (the server keeps serving)",
    )
    alerts = parser.add_argument_group("alerts")
    alerts.add_argument("--webhook", metavar="URL", help="POST each alert's event (JSON) to URL, retried with back-off")
    alerts.add_argument(
        "--alert-cooldown",
        type=cli.positive_float,
        default=30.0,
        metavar="SECONDS",
        help="at most one alert per this many seconds (default: %(default)s); never two for one person",
    )
    parser.add_argument(
        "--privacy",
        action="store_true",
        help="store no snapshots and blur every face in the video that leaves the process (counts and verdicts only)",
    )
    health = parser.add_argument_group("camera health")
    health.add_argument(
        "--stall-seconds",
        type=cli.positive_float,
        default=3.0,
        metavar="S",
        help="no frame for this long: stalled (default: %(default)s)",
    )
    health.add_argument(
        "--offline-seconds",
        type=cli.positive_float,
        default=15.0,
        metavar="S",
        help="no frame for this long: offline (default: %(default)s)",
    )
    add_judge_size_option(parser)
    cli.add_pipeline_options(parser, photos=False)
    _add_server_options(parser, DEFAULT_PORT, "mask-serve-data")
    args = parser.parse_args(argv)
    if args.video is not None and "://" in args.video and (args.loop or args.fast):
        parser.error("--loop and --fast are for video files, not streams")
    if args.offline_seconds <= args.stall_seconds:
        parser.error("--offline-seconds must be longer than --stall-seconds")
    return args


def parse_dashboard_args(argv: list[str]) -> argparse.Namespace:
    parser = cli.ArgumentParser(
        prog="serve.py dashboard",
        description=(
            "One page and one API over every camera of a fleet: subscribes to PREFIX/+/# on the broker (the "
            "cameras run 'serve.py --mqtt'), stores their events in its own SQLite (each once: cameras send again "
            "what the broker did not confirm) and shows their video, counts and alerts."
        ),
    )
    _add_server_options(parser, DEFAULT_DASHBOARD_PORT, "mask-serve-dashboard")
    args = parser.parse_args(argv)
    if args.mqtt is None:
        parser.error("the dashboard needs --mqtt HOST:PORT")
    return args


def _read_secret(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise MaskDetectionError(f"cannot read {what} {cli.safe_text(path)}: {reason}") from None


def service_config(args: argparse.Namespace, dashboard: bool):
    from ..service.app import AppSettings
    from ..service.security import check_bind, read_token
    from ..service.server import ServiceConfig

    token = read_token(args.token_file) if args.token_file is not None else None
    check_bind(args.host, token)
    mqtt = None
    if args.mqtt is not None:
        from ..service.mqtt import MqttSettings

        host, port = args.mqtt
        password = _read_secret(args.mqtt_password_file, "the MQTT password file") if args.mqtt_password_file else None
        mqtt = MqttSettings(
            host=host,
            port=port,
            username=args.mqtt_user,
            password=password,
            tls=args.mqtt_tls or args.mqtt_ca is not None,
            ca_file=args.mqtt_ca,
            prefix=args.mqtt_prefix,
            client_id=args.mqtt_client_id,
        )
    app = AppSettings(
        token=token,
        cors_origins=list(args.cors_origin),
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_upload_pixels=args.max_upload_pixels,
        dashboard=dashboard,
    )
    return ServiceConfig(
        store=Path(args.store),
        host=args.host,
        port=args.port,
        keep_days=args.keep_days,
        app=app,
        mqtt=mqtt,
        webhook=getattr(args, "webhook", None),
        alert_cooldown=getattr(args, "alert_cooldown", 30.0),
    )


def _ready(what: str):
    def say(address: str) -> None:
        cli.say(f"serving {what} on {address} (Ctrl-C stops)")

    return say


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["dashboard"]:
        return dashboard_main(argv[1:])
    args = parse_camera_args(argv)
    from ..pipeline import load_pipeline
    from ..service.camera import CameraConfig
    from ..service.server import listen, serve_camera
    from ..video_io import is_url, open_source

    config = service_config(args, dashboard=False)
    if args.video is not None and not is_url(args.video):
        open_source(video=args.video).close()  # a mistyped file is an error now; a camera or stream is retried
    sock = listen(config.host, config.port)  # the port is ours before the slow model load
    try:
        camera = CameraConfig(
            name=args.name,
            camera=args.camera,
            video=args.video,
            loop=args.loop,
            pace=not args.fast,
            stall_seconds=args.stall_seconds,
            offline_seconds=args.offline_seconds,
            privacy=args.privacy,
            tracking=tracking_config(args),
            max_frames=args.max_frames,
        )
        options = dict(face_confidence=args.face_confidence, mask_threshold=args.mask_threshold, threads=args.threads)
        pipeline = load_pipeline(args.model, detect_size=args.detect_size, upscale=1.0, warn=cli.warn, **options)
        try:
            serve_camera(
                config,
                camera,
                pipeline,
                lambda: load_pipeline(args.model, warn=cli.warn, **options),
                cli.warn,
                _ready(f"camera {args.name} ({camera.source_text})"),
                sock=sock,
            )
        except KeyboardInterrupt as exc:
            if isinstance(exc, Interrupted):
                raise  # SIGTERM, SIGHUP: 128 + the signal number
            cli.say("stopped", file=sys.stderr)  # Ctrl-C: the ordinary way to stop a server
    finally:
        sock.close()
    return cli.EXIT_OK


def dashboard_main(argv: list[str]) -> int:
    args = parse_dashboard_args(argv)
    from ..pipeline import load_pipeline
    from ..service.server import listen, serve_dashboard

    config = service_config(args, dashboard=True)
    sock = listen(config.host, config.port)
    try:
        prefix = config.mqtt.prefix
        serve_dashboard(
            config,
            lambda: load_pipeline(warn=cli.warn),
            cli.warn,
            _ready(f"the dashboard of {config.mqtt.host}:{config.mqtt.port} ({prefix}/+)"),
            sock=sock,
        )
    except KeyboardInterrupt as exc:
        if isinstance(exc, Interrupted):
            raise
        cli.say("stopped", file=sys.stderr)
    finally:
        sock.close()
    return cli.EXIT_OK


def run() -> None:
    """The console script and top-level script entry point: exits with the exit code."""
    cli.run(main)
