"""Whether a window can be opened: the display check.

opencv-python's ``imshow`` aborts the whole process when there is no display, and Qt aborts it when DISPLAY
names an X server that does not answer (a closed SSH session, a stale variable), losing the video being
written. So the commands ask first: ``display_available``.
"""

import os
import re
import socket
import struct
import sys
import time

from .fileio import display_path

X11_TIMEOUT = 1.0  # seconds to wait for an X server to answer


def display_available() -> tuple[bool, str]:
    """(available, reason). opencv-python's imshow aborts the process without a display, so ask first.

    On X11 systems the server named by DISPLAY must answer: a stale DISPLAY (a closed SSH session) would make
    Qt abort the whole process, losing the video being written.
    """
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        display = os.environ.get("DISPLAY")
        if not display:
            if os.environ.get("WAYLAND_DISPLAY"):
                # opencv-python's Qt only has the xcb (X11) platform plugin: it needs Xwayland's DISPLAY.
                return False, "DISPLAY is not set (WAYLAND_DISPLAY alone is not enough: OpenCV's windows need X11)"
            return False, "neither DISPLAY nor WAYLAND_DISPLAY is set"
        if not x_server_answers(display):
            return False, f"DISPLAY={display_path(display)} does not answer"
        return True, ""
    return True, ""  # macOS and Windows always have a window system


# The X11 connection setup: byte order ("l", little endian), protocol 11.0, no authorisation (name and data of
# length 0). A server answers it with at least one byte: 1 success, 0 refused, 2 more authentication needed.
_X11_SETUP = b"l\0" + struct.pack("<HHHH", 11, 0, 0, 0) + b"\0\0"


def _x_server_addresses(display):
    """Where the X server named by ``display`` listens, in the order xcb tries: [(family, address)]; [] for a
    value that names no display at all; None when it cannot be told (a socket path such as macOS launchd's
    "/private/tmp/com.apple.launchd.X/org.xquartz:0", another transport: then it is not checked)."""
    if display.startswith("/"):
        return None
    match = re.fullmatch(r"(?:(?P<protocol>[A-Za-z0-9]+)/)?(?P<host>[^/]*?):(?P<number>\d+)(?:\.\d+)?", display)
    if match is None:
        return []  # xcb cannot parse it either
    protocol, host, number = match["protocol"], match["host"], int(match["number"])
    host = host.strip("[]")  # [::1]:0
    if protocol not in (None, "unix", "tcp", "inet", "inet6"):
        return None
    port = 6000 + number
    if protocol in ("tcp", "inet", "inet6") or (protocol is None and host not in ("", "unix")):
        return [("tcp", (host or "localhost", port))]
    # ("tcp", (host, port)) or (AF_UNIX, socket path)
    sockets: list[tuple[socket.AddressFamily | str, str | tuple[str, int]]] = []
    if sys.platform.startswith("linux"):
        sockets.append((socket.AF_UNIX, f"\0/tmp/.X11-unix/X{number}"))  # the abstract socket
    sockets.append((socket.AF_UNIX, f"/tmp/.X11-unix/X{number}"))
    if protocol is None and host == "":
        sockets.append(("tcp", ("localhost", port)))  # xcb's last resort for ":N"
    return sockets


def x_server_answers(display: str, timeout: float = X11_TIMEOUT) -> bool:
    """Whether an X server answers at ``display`` (a DISPLAY value) within ``timeout`` seconds.

    Sends the connection setup and waits for any reply byte: a refusal still means a live server, because Qt
    sends the authorisation cookie that this probe does not. Forms that cannot be checked count as answering.
    """
    addresses = _x_server_addresses(display)
    if addresses is None:
        return True
    deadline = time.monotonic() + timeout
    for family, address in addresses:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            if family == "tcp":
                conn = socket.create_connection(address, timeout=left)
            else:
                conn = socket.socket(family, socket.SOCK_STREAM)
                conn.settimeout(left)
                try:
                    conn.connect(address)
                except BaseException:
                    conn.close()
                    raise
        except OSError:
            continue  # nothing there: try the next address
        with conn:
            try:
                conn.settimeout(max(0.01, deadline - time.monotonic()))
                conn.sendall(_X11_SETUP)
                return bool(conn.recv(1))  # b"" = closed without an answer
            except OSError:  # timed out or reset: a connection that does not answer is no server
                return False
    return False
