"""Safe by default: who may talk to the service, and what an upload may be.

The service listens on the loopback address unless told otherwise; any other address needs a token, and then
every API call and the page need it. A token comes in an ``Authorization: Bearer`` header (programs), or once in
the page's address (``/?token=...``), which sets a cookie for the page's own requests (the video, the events) and
leaves the address without it.
"""

import ipaddress
import os
import secrets
from pathlib import Path

from ..errors import MaskDetectionError
from ..fileio import display_path

TOKEN_COOKIE = "mask_detection_token"
MIN_TOKEN_LENGTH = 16  # characters; `openssl rand -hex 16` gives 32
DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_UPLOAD_PIXELS = 50_000_000  # a 8000 x 6000 photo; bigger ones are refused before decoding


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def read_token(path: str | os.PathLike) -> str:
    """The token in ``path`` (its first line, stripped): at least MIN_TOKEN_LENGTH characters, printable ASCII."""
    shown = display_path(path)
    try:
        text = Path(path).read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise MaskDetectionError(f"cannot read the token file {shown}: {reason}") from None
    lines = text.strip().splitlines()
    token = lines[0].strip() if lines else ""
    if len(token) < MIN_TOKEN_LENGTH:
        raise MaskDetectionError(
            f"the token in {shown} is too short: use at least {MIN_TOKEN_LENGTH} characters "
            "(e.g. `openssl rand -hex 16 > token.txt`)"
        )
    if not token.isascii() or not token.isprintable() or " " in token:
        raise MaskDetectionError(f"the token in {shown} must be printable ASCII without spaces")
    return token


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token."""
    if token is None and not is_loopback(host):
        raise MaskDetectionError(
            f"listening on {host} makes the camera reachable from other machines: give --token-file "
            "(every API call and the page then need the token), or bind 127.0.0.1"
        )


def token_matches(expected: str | None, given: str | None) -> bool:
    """Whether a request may pass: always without a token set, else when ``given`` is the token (compared in
    constant time, so its characters cannot be guessed one by one from response times)."""
    if expected is None:
        return True
    if given is None:
        return False
    return secrets.compare_digest(expected.encode(), given.encode())
