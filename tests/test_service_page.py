"""The live page in a real browser: headless Chromium (Selenium) on a real ``serve.py``, as an operator sees it.

The camera plays a generated video: a bare face (the astronaut, which the shipped classifier calls no mask) for
three seconds, then an empty entrance for three, looping. Every loop is a new person without a mask, so the page
shows what arrives live (a new row, the banner on and off, the entrance panel turning red then green), not only
what it fetched when it opened. Every check waits for an observed state with a generous safety net; nothing
sleeps a fixed time and then asserts.

Screenshots of every view are saved as /tmp/page-*.png for a person to look at.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from conftest import REPO, read_until
from detect_support import face_photo
from service_support import Broker

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SAFETY_NET = 60.0  # seconds: only a broken page or server waits this long
START_NET = 300  # a server loads its model first: slow on a busy machine
FACE_FRAMES = 45  # 3 s of a bare face at 15 fps ...
EMPTY_FRAMES = 45  # ... then 3 s of nobody: longer than a track survives unseen (1 s), so the next loop is a new person
SCREENSHOTS = "/tmp"


# ------------------------------------------------------------------------------------------ the video and servers


def write_entrance_loop(path, fps=15.0, size=(640, 480)):
    """A bare face swaying a little (frames differ), then the empty entrance: one person per loop."""
    import cv2

    face = face_photo()
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened()
    for i in range(FACE_FRAMES + EMPTY_FRAMES):
        canvas = np.full((height, width, 3), 90, np.uint8)
        if i < FACE_FRAMES:
            x = 200 + int(30 * np.sin(i / 8))
            y = 120
            canvas[y : y + face.shape[0], x : x + face.shape[1]] = face
        writer.write(canvas)
    writer.release()
    return path


class Server:
    """A running ``serve.py`` (camera or dashboard) and its address."""

    def __init__(self, args, folder, name):
        self.name = name
        self.err_path = folder / f"{name}.stderr.txt"
        self._err = self.err_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "serve.py"), *map(str, args)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self._err,  # a file: warnings never fill a pipe nobody reads
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.url = None

    def wait_ready(self):
        lines = read_until(self.proc, lambda line: line.startswith("serving ") and " on http://" in line, START_NET)
        self.url = lines[-1].split(" on ", 1)[1].split(" ")[0].rstrip("/")
        return self

    def json(self, path):
        with urllib.request.urlopen(self.url + path, timeout=SAFETY_NET) as response:
            return json.loads(response.read())

    def stderr(self):
        self._err.flush()
        return self.err_path.read_text(errors="replace")[-3000:]

    def check_running(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited ({self.proc.returncode}):\n{self.stderr()}")

    def stop(self):
        """SIGTERM, as a service manager stops it: it must exit, with the status for a SIGTERM (143)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=SAFETY_NET)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.name} did not exit on SIGTERM:\n{self.stderr()}") from None
        finally:
            self.proc.stdout.close()
            self._err.close()
        assert code == 143, f"{self.name} exited {code} on SIGTERM:\n{self.stderr()}"

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ------------------------------------------------------------------------------------------ the browser


def open_browser():
    """Headless Chromium through its driver, both from Debian (``make system-deps``); missing ones fail the test:
    a page nobody has looked at in a browser is not tested."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.fail(
            f"the page's tests need a real browser, and {' and '.join(missing)} is missing: install the Debian "
            "packages chromium and chromium-driver (`make system-deps` does)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


class Page:
    """The browser on one server, with waits on what the page shows."""

    def __init__(self, driver, servers):
        self.driver = driver
        self.servers = servers

    def open(self, url):
        self.driver.get(url)

    def wait_for(self, what, condition, safety_net=SAFETY_NET):
        """Poll ``condition()`` (what the page shows now) until it is truthy and return it; a failure says what
        never came, with the browser's console and the servers' errors."""
        from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

        deadline = time.monotonic() + safety_net
        while True:
            try:
                value = condition()
            except (NoSuchElementException, StaleElementReferenceException):
                value = None
            if value:
                return value
            for server in self.servers:
                server.check_running()
            if time.monotonic() > deadline:
                console = "\n".join(entry["message"] for entry in self.driver.get_log("browser"))
                errors = "\n".join(f"{s.name}: {s.stderr()}" for s in self.servers)
                pytest.fail(f"never saw {what} within {safety_net:g} s\nbrowser console:\n{console}\n{errors}")
            time.sleep(0.05)

    def css(self, selector):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector):
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def loaded(self, image):
        """The image has a decoded picture (a snapshot file, or an MJPEG stream's first frame)."""
        return self.js("return arguments[0].complete && arguments[0].naturalWidth > 0", image)

    def picture(self, image):
        """The pixels the image shows now (its current frame, drawn small on a canvas): unlike a screenshot of the
        element, a banner that moves the page meanwhile does not make two equal frames look different."""
        return self.js(
            "const image = arguments[0], canvas = document.createElement('canvas');"
            "canvas.width = 160; canvas.height = 120;"
            "canvas.getContext('2d').drawImage(image, 0, 0, 160, 120);"
            "return canvas.toDataURL('image/png');",
            image,
        )

    def wait_video_changes(self, selector, changes=5):
        """The live picture shows a frame, then others, again and again: the screen follows the camera (a picture
        fetched once, or again only when the page reconnects, changes once or twice at most)."""
        video = self.wait_for(f"a frame in {selector}", lambda: self.loaded(self.css(selector)) and self.css(selector))
        shown = self.picture(video)
        for change in range(1, changes + 1):
            shown = self.wait_for(
                f"{selector} to change ({change} of {changes} times)",
                lambda last=shown: (now := self.picture(self.css(selector))) != last and now,
            )

    def banner_shown(self):
        banner = self.css("#alert-banner")
        return banner.is_displayed() and banner

    def no_mask_ids(self):
        ids = [row.get_attribute("data-event-id") for row in self.all(".no-mask-row")]
        assert len(ids) == len(set(ids)), f"an event is listed twice: {ids}"
        return ids

    def no_horizontal_scroll(self):
        return self.js("return [document.documentElement.scrollWidth, window.innerWidth]")

    def screenshot(self, name):
        path = os.path.join(SCREENSHOTS, f"page-{name}.png")
        self.driver.save_screenshot(path)
        return path


def no_mask_verdicts(server, camera=None):
    query = "/api/events?type=verdict&label=without_mask&limit=500" + (f"&camera={camera}" if camera else "")
    return {event["id"]: event for event in server.json(query)["events"]}


# ------------------------------------------------------------------------------------------ one camera


@pytest.fixture(scope="module")
def camera_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("page")
    video = write_entrance_loop(folder / "entrance.mp4")
    server = Server(["--video", video, "--loop", "--port", "0", "--store", folder / "store"], folder, "the camera")
    try:
        yield server.wait_ready()
    except BaseException:
        server.kill()
        raise
    server.stop()


@pytest.fixture(scope="module")
def browser():
    driver = open_browser()
    yield driver
    driver.quit()


@pytest.fixture
def page(browser, camera_server):
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return Page(browser, [camera_server])


def test_operator_view_follows_the_camera_live(page, camera_server):
    page.open(camera_server.url + "/")
    card = page.wait_for("the camera's card", lambda: page.css('.camera[data-camera="camera"]'))
    assert card.find_element("css selector", ".camera-video").get_attribute("alt"), "the video has no alt text"

    # The live video: MJPEG frames replacing each other.
    page.wait_video_changes('.camera[data-camera="camera"] .camera-video')
    page.wait_for("the status live", lambda: card.find_element("css selector", ".camera-status").text == "Live")

    # A row for the bare face: a stored verdict "without_mask", with its snapshot loaded.
    row = page.wait_for("a row in the no-mask list", lambda: page.all(".no-mask-row"))[0]
    stored = no_mask_verdicts(camera_server)
    event_id = row.get_attribute("data-event-id")
    assert event_id in stored, (event_id, list(stored))
    thumb = row.find_element("css selector", ".no-mask-thumb")
    page.wait_for("the row's snapshot to load", lambda: page.loaded(thumb))
    assert thumb.get_attribute("src").endswith(f"/api/events/{event_id}/snapshot.jpg")
    assert "camera" in thumb.get_attribute("alt")
    probability = stored[event_id]["after"]["probability"]
    assert f"{round(probability * 100)}%" in row.text and "camera" in row.text

    # The alert while the face is in view, gone when nobody is, back with the next person: the live state.
    banner = page.wait_for("the alert banner", page.banner_shown)
    assert banner.get_attribute("role") == "alert"
    assert "Person without a mask in view at camera" in banner.text
    page.wait_for("the banner to go when nobody is in view", lambda: not page.banner_shown())
    page.wait_for("nobody in view", lambda: card.find_element("css selector", ".count-in-view").text == "0")
    page.wait_for("the banner again for the next person", page.banner_shown)
    page.wait_for(
        "one person without a mask in view",
        lambda: card.find_element("css selector", ".count-without-mask").text == "1",
    )

    # The next loop's person arrives as a live event (the page fetched the list only when it opened), newest first.
    seen = page.no_mask_ids()
    new_ids = page.wait_for("a row for the next person", lambda: [i for i in page.no_mask_ids() if i not in seen])
    assert page.no_mask_ids()[0] == new_ids[0], "the newest row is not first"
    assert new_ids[0] in no_mask_verdicts(camera_server)
    counted = int(card.find_element("css selector", ".count-people").text)
    assert counted >= 2, f"people counted so far: {counted}"
    page.wait_for("the banner", page.banner_shown)
    page.screenshot("operator")


def test_entrance_view_asks_for_a_mask(page, camera_server):
    page.open(camera_server.url + "/entrance")
    page.wait_video_changes("#entrance-video")
    panel = page.css("#entrance-panel")
    page.wait_for("please wear a mask", lambda: panel.get_attribute("data-state") == "no-mask")
    assert page.css("#entrance-message").text == "Please wear a mask"
    assert not page.css("#operator-view").is_displayed() and not page.css(".topbar").is_displayed()
    page.screenshot("entrance")
    page.wait_for("welcome once nobody without a mask is there", lambda: panel.get_attribute("data-state") == "welcome")
    assert page.css("#entrance-message").text == "Welcome"
    page.screenshot("entrance-welcome")


@pytest.mark.parametrize("view", ["/", "/entrance"])
def test_page_fits_a_phone(page, camera_server, view):
    page.driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
    )
    page.open(camera_server.url + view)
    if view == "/":
        card = page.wait_for("the camera's card", lambda: page.css(".camera"))
        row = page.wait_for("a row in the no-mask list", lambda: page.all(".no-mask-row"))[0]
        page.wait_for("the row's snapshot", lambda: page.loaded(row.find_element("css selector", ".no-mask-thumb")))
        page.wait_for("a video frame", lambda: page.loaded(card.find_element("css selector", ".camera-video")))
        # One column: the list of people comes under the camera, both as wide as the screen allows.
        recent = page.css(".recent")
        assert recent.location["y"] >= card.location["y"] + card.size["height"], "the list is not under the camera"
        assert card.size["width"] > 300 and recent.size["width"] > 300
    else:
        page.wait_for(
            "the entrance panel",
            lambda: page.css("#entrance-panel").get_attribute("data-state") in ("no-mask", "welcome"),
        )
        page.wait_for("a video frame", lambda: page.loaded(page.css("#entrance-video")))
    scroll_width, inner_width = page.no_horizontal_scroll()
    assert inner_width == 390
    assert scroll_width <= inner_width, f"the page scrolls sideways on a phone: {scroll_width} > {inner_width}"
    page.screenshot("phone" if view == "/" else "phone-entrance")


# ------------------------------------------------------------------------------------------ the dashboard


def test_dashboard_shows_every_camera_through_the_broker(tmp_path, browser):
    broker = Broker(tmp_path / "broker").start()
    video = write_entrance_loop(tmp_path / "entrance.mp4")
    mqtt = f"127.0.0.1:{broker.port}"
    servers = []
    try:
        dashboard = Server(
            ["dashboard", "--mqtt", mqtt, "--port", "0", "--store", tmp_path / "dashboard"], tmp_path, "the dashboard"
        )
        servers.append(dashboard)
        for name in ("door-a", "door-b"):
            args = [
                "--video",
                video,
                "--loop",
                "--name",
                name,
                "--mqtt",
                mqtt,
                "--port",
                "0",
                "--store",
                tmp_path / name,
            ]
            servers.append(Server(args, tmp_path, name))
        for server in servers:
            server.wait_ready()
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        page = Page(browser, servers)
        page.open(dashboard.url + "/")

        for name in ("door-a", "door-b"):
            page.wait_for(f"the card of {name}", lambda name=name: page.css(f'.camera[data-camera="{name}"]'))
        assert {card.get_attribute("data-camera") for card in page.all(".camera")} == {"door-a", "door-b"}
        for name in ("door-a", "door-b"):
            page.wait_video_changes(f'.camera[data-camera="{name}"] .camera-video')

        rows = page.wait_for(
            "rows for both cameras",
            lambda: {row.get_attribute("data-camera") for row in page.all(".no-mask-row")} >= {"door-a", "door-b"},
        )
        assert rows
        stored = no_mask_verdicts(dashboard)
        for row in page.all(".no-mask-row"):
            assert row.get_attribute("data-event-id") in stored
        thumb = page.all(".no-mask-row .no-mask-thumb")[0]
        page.wait_for("a snapshot (sent over MQTT) to load", lambda: page.loaded(thumb))

        banner = page.wait_for("the alert banner", page.banner_shown)
        assert "Person without a mask in view at door-" in banner.text
        page.screenshot("dashboard")
    finally:
        errors = []
        for server in reversed(servers):
            try:
                server.stop()
            except AssertionError as exc:
                errors.append(str(exc))
        broker.stop()
    assert not errors, "\n".join(errors)
