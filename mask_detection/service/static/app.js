// The live page of the mask check: the operator view (/) and the entrance view (/entrance).
// Plain JavaScript, nothing fetched from elsewhere. Every text from the server goes in through textContent.
"use strict";

(function () {
  const WITH_MASK = "with_mask";
  const WITHOUT_MASK = "without_mask";
  const CLASS_NAMES = { with_mask: "Mask", without_mask: "No mask", mask_weared_incorrect: "Mask worn wrongly" };
  const STATUS_TEXT = { starting: "Starting", live: "Live", stalled: "Stalled", offline: "Offline", ended: "Ended" };
  const RECENT_LIMIT = 20; // rows asked for at the start
  const RECENT_KEEP = 50; // rows kept on the page
  // A browser opens about six connections per server: past this many cameras, the pictures are refreshed from
  // latest.jpg instead of each holding a live MJPEG stream open (which would starve the page's other requests).
  const MAX_STREAMS = 4;
  const POLL_MS = 1000;
  const RETRY_MS = 3000;

  const entranceMode = window.location.pathname.replace(/\/+$/, "") === "/entrance";
  const wantedCamera = new URLSearchParams(window.location.search).get("camera");

  const cameras = new Map(); // name -> {card, data, video}
  const noMask = new Map(); // event id -> event
  let authFailed = false;
  let catchUp = true; // fetch the recent events once this connection's first state arrived

  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------------------------------- helpers
  function api(path) {
    return fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" }).then((response) => {
      if (response.status === 401) {
        needToken();
        throw new Error("unauthorized");
      }
      if (!response.ok) {
        throw new Error(`${path}: HTTP ${response.status}`);
      }
      return response.json();
    });
  }

  function needToken() {
    authFailed = true;
    $("auth-needed").hidden = false;
    $("operator-view").hidden = true;
    $("entrance-view").hidden = true;
    setConnection("offline", "Not connected");
  }

  function setConnection(state, text) {
    const element = $("connection");
    element.dataset.state = state;
    element.textContent = text;
  }

  function className(name) {
    return CLASS_NAMES[name] || String(name).replace(/_/g, " ");
  }

  function percent(probability) {
    return typeof probability === "number" ? `${Math.round(probability * 100)}%` : "";
  }

  function localTime(seconds) {
    const date = new Date(seconds * 1000);
    const today = new Date();
    if (date.toDateString() === today.toDateString()) {
      return date.toLocaleTimeString();
    }
    return date.toLocaleString();
  }

  function encodeName(name) {
    return encodeURIComponent(name);
  }

  // ------------------------------------------------------------------------------------------- video
  // A picture kept live: an MJPEG stream, or latest.jpg fetched again after each one loads. A failed stream (the
  // server restarted, the network dropped) is opened again after a pause.
  function LiveImage(img, camera, streaming) {
    this.img = img;
    this.camera = camera;
    this.streaming = streaming;
    this.timer = null;
    img.addEventListener("error", () => this.later(RETRY_MS));
    img.addEventListener("load", () => {
      if (!this.streaming) {
        this.later(POLL_MS);
      }
    });
    this.open();
  }

  LiveImage.prototype.open = function () {
    clearTimeout(this.timer);
    this.timer = null;
    if (authFailed) {
      return;
    }
    const base = `/api/cameras/${encodeName(this.camera)}/`;
    const bust = `?t=${Date.now()}`;
    this.img.src = this.streaming ? base + "stream.mjpeg" + (this.reopened ? bust : "") : base + "latest.jpg" + bust;
    this.reopened = true;
  };

  LiveImage.prototype.later = function (ms) {
    if (this.timer === null) {
      this.timer = setTimeout(() => this.open(), ms);
    }
  };

  LiveImage.prototype.setStreaming = function (streaming) {
    if (streaming !== this.streaming) {
      this.streaming = streaming;
      this.open();
    }
  };

  // ------------------------------------------------------------------------------------------- cameras
  function cameraCard(name) {
    let entry = cameras.get(name);
    if (entry) {
      return entry;
    }
    const card = $("camera-template").content.firstElementChild.cloneNode(true);
    card.dataset.camera = name;
    card.querySelector(".camera-name").textContent = name;
    const img = card.querySelector(".camera-video");
    img.alt = `Live video of camera ${name}`;
    const entrance = card.querySelector(".camera-entrance");
    entrance.href = `/entrance?camera=${encodeName(name)}`;
    entrance.setAttribute("aria-label", `Entrance view of camera ${name}`);
    entry = { card, data: null, video: null };
    cameras.set(name, entry);
    if (!entranceMode) {
      // Cards in name order, as the server lists them.
      const list = $("cameras");
      const after = Array.from(list.children).find((other) => other.dataset.camera > name);
      list.insertBefore(card, after || null);
      $("no-cameras").hidden = true;
      entry.video = new LiveImage(img, name, cameras.size <= MAX_STREAMS);
      if (cameras.size > MAX_STREAMS) {
        cameras.forEach((other) => other.video && other.video.setStreaming(false));
      }
    }
    return entry;
  }

  function showCamera(camera) {
    const entry = cameraCard(camera.name);
    const previous = entry.data;
    entry.data = camera;
    const state = camera.state || {};
    const status = camera.status || state.status || "starting";
    const card = entry.card;
    card.dataset.status = status;
    card.classList.toggle("alerting", Boolean(state.alert) && status === "live");

    const badge = card.querySelector(".camera-status");
    badge.dataset.status = status;
    badge.textContent = STATUS_TEXT[status] || status;

    const problem = card.querySelector(".camera-problem");
    const problemText = status === "live" ? "" : state.problem || "";
    problem.textContent = problemText;
    problem.hidden = problemText === "";

    const byClass = state.in_view_by_class || {};
    card.querySelector(".count-in-view").textContent = state.in_view ?? 0;
    card.querySelector(".count-with-mask").textContent = byClass[WITH_MASK] ?? 0;
    card.querySelector(".count-without-mask").textContent = byClass[WITHOUT_MASK] ?? 0;
    card.querySelector(".count-too-small").textContent = state.in_view_unjudged ?? 0;
    const others = Object.keys(byClass).filter((name) => name !== WITH_MASK && name !== WITHOUT_MASK);
    const otherBox = card.querySelector(".count-other-box");
    otherBox.hidden = others.length === 0;
    if (others.length) {
      card.querySelector(".count-other-label").textContent = others.length === 1 ? className(others[0]) : "Other";
      card.querySelector(".count-other").textContent = others.reduce((sum, name) => sum + (byClass[name] || 0), 0);
    }
    const people = state.people || {};
    const total = people.total ?? 0;
    card.querySelector(".count-people").textContent = total;
    card.querySelector(".count-people-label").textContent = total === 1 ? "person" : "people";
    const source = card.querySelector(".camera-source");
    source.textContent = camera.source ? `Source: ${camera.source}` : "";
    source.hidden = !camera.source;

    // Back from a break: the stream may have been cut meanwhile.
    const wasLive = previous && (previous.status || (previous.state || {}).status) === "live";
    if (entry.video && status === "live" && previous && !wasLive) {
      entry.video.open();
    }
  }

  function showCameras(list) {
    list.forEach(showCamera);
    const alerting = list.filter((camera) => camera.state && camera.state.alert && camera.status === "live");
    const banner = $("alert-banner");
    if (alerting.length) {
      const names = alerting.map((camera) => camera.name);
      const places = names.length === 1 ? names[0] : `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
      const text = `Person without a mask in view at ${places}`;
      if ($("alert-text").textContent !== text) {
        $("alert-text").textContent = text;
      }
      banner.hidden = false;
    } else {
      banner.hidden = true;
      $("alert-text").textContent = "";
    }
    document.title = alerting.length ? "(!) No mask – Mask check" : "Mask check";
    if (entranceMode) {
      showEntrance(list);
    }
  }

  // ------------------------------------------------------------------------------------------- entrance
  let entranceVideo = null;

  function showEntrance(list) {
    const camera = wantedCamera ? list.find((item) => item.name === wantedCamera) : list[0];
    const panel = $("entrance-panel");
    const message = $("entrance-message");
    const detail = $("entrance-detail");
    const symbol = $("entrance-symbol");
    let state = "waiting";
    let text = wantedCamera ? `Waiting for camera ${wantedCamera}` : "Waiting for the camera";
    let small = "";
    if (camera) {
      if (!entranceVideo || entranceVideo.camera !== camera.name) {
        const img = $("entrance-video");
        img.alt = `Live video of the entrance (camera ${camera.name})`;
        entranceVideo = new LiveImage(img, camera.name, true);
      }
      const status = camera.status;
      const cameraState = camera.state || {};
      if (status !== "live") {
        state = "unavailable";
        text = "Please wait";
        small = `Camera ${camera.name} is ${(STATUS_TEXT[status] || status).toLowerCase()}`;
      } else if (cameraState.alert) {
        state = "no-mask";
        text = "Please wear a mask";
        small = "Put your mask on before you come in";
      } else {
        state = "welcome";
        text = "Welcome";
        const masked = (cameraState.in_view_by_class || {})[WITH_MASK] > 0;
        small = masked ? "Thank you for wearing a mask" : "Please keep your mask on inside";
      }
    }
    if (panel.dataset.state !== state || message.textContent !== text) {
      panel.dataset.state = state;
      message.textContent = text;
      symbol.textContent = { welcome: "✓", "no-mask": "!", unavailable: "…", waiting: "…" }[state];
    }
    if (detail.textContent !== small) {
      detail.textContent = small;
    }
  }

  // ------------------------------------------------------------------------------------------- no-mask list
  function isNoMask(event) {
    return event && event.type === "verdict" && event.after && event.after.label === WITHOUT_MASK;
  }

  function newerFirst(a, b) {
    return b.time - a.time || (b.seq ?? 0) - (a.seq ?? 0) || (a.id < b.id ? 1 : -1);
  }

  function noMaskRow(event) {
    const row = $("no-mask-template").content.firstElementChild.cloneNode(true);
    row.dataset.eventId = event.id;
    row.dataset.camera = event.camera;
    const when = localTime(event.time);
    const thumb = row.querySelector(".no-mask-thumb");
    if (event.snapshot_url) {
      thumb.src = event.snapshot_url;
      thumb.alt = `Snapshot of the person without a mask at ${event.camera}, ${when}`;
      thumb.addEventListener("error", () => thumb.classList.add("missing"));
    } else {
      const none = document.createElement("span");
      none.className = "no-mask-thumb no-snapshot";
      none.textContent = "No snapshot";
      thumb.replaceWith(none);
    }
    const time = row.querySelector(".no-mask-time");
    time.textContent = when;
    time.dateTime = new Date(event.time * 1000).toISOString();
    row.querySelector(".no-mask-camera").textContent = event.camera;
    const probability = percent(event.after.probability);
    const badge = row.querySelector(".no-mask-probability");
    badge.textContent = probability;
    badge.title = probability ? `Probability of no mask: ${probability}` : "";
    if (event.alert) {
      row.classList.add("alerted");
    }
    return row;
  }

  function addNoMask(events) {
    let added = false;
    events.forEach((event) => {
      if (isNoMask(event) && !noMask.has(event.id)) {
        noMask.set(event.id, event);
        added = true;
      }
    });
    if (!added) {
      return;
    }
    const ordered = Array.from(noMask.values()).sort(newerFirst);
    ordered.slice(RECENT_KEEP).forEach((event) => noMask.delete(event.id));
    const list = $("no-mask-list");
    const existing = new Map(Array.from(list.children).map((row) => [row.dataset.eventId, row]));
    ordered.slice(0, RECENT_KEEP).forEach((event, index) => {
      const row = existing.get(event.id) || noMaskRow(event);
      existing.delete(event.id);
      if (list.children[index] !== row) {
        list.insertBefore(row, list.children[index] || null);
      }
    });
    existing.forEach((row) => row.remove());
    $("no-mask-empty").hidden = noMask.size > 0;
  }

  function loadRecent() {
    return api(`/api/events?type=verdict&label=${WITHOUT_MASK}&limit=${RECENT_LIMIT}`)
      .then((body) => addNoMask(body.events || []))
      .catch(showLoadError);
  }

  function showLoadError(error) {
    if (!authFailed) {
      const notice = $("load-error");
      notice.textContent = `Cannot reach the server (${error.message}); retrying.`;
      notice.hidden = false;
    }
  }

  // ------------------------------------------------------------------------------------------- live updates
  function connect() {
    const source = new EventSource("/api/events/stream");
    source.addEventListener("open", () => {
      catchUp = true;
      setConnection("live", "Live");
      $("load-error").hidden = true;
    });
    source.addEventListener("state", (message) => {
      const body = JSON.parse(message.data);
      showCameras(body.cameras || []);
      if (catchUp && !entranceMode) {
        // This stream now hears every new event: fetch what came before it (duplicates are dropped by id).
        catchUp = false;
        loadRecent();
      }
    });
    source.addEventListener("event", (message) => addNoMask([JSON.parse(message.data)]));
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (an error status such as 401): find out why, then try again.
        source.close();
        setConnection("offline", "Disconnected");
        api("/api/health")
          .then(() => setTimeout(connect, RETRY_MS))
          .catch((error) => {
            if (!authFailed) {
              showLoadError(error);
              setTimeout(connect, RETRY_MS);
            }
          });
      } else {
        setConnection("connecting", "Reconnecting…");
      }
    });
  }

  function start() {
    document.body.classList.add(entranceMode ? "entrance-mode" : "operator-mode");
    $(entranceMode ? "nav-entrance" : "nav-operator").setAttribute("aria-current", "page");
    $("operator-view").hidden = entranceMode;
    $("entrance-view").hidden = !entranceMode;
    $("fullscreen").addEventListener("click", () => {
      if (document.fullscreenElement) {
        document.exitFullscreen();
      } else if (document.documentElement.requestFullscreen) {
        document.documentElement.requestFullscreen();
      }
    });
    api("/api/cameras")
      .then((body) => {
        showCameras(body.cameras || []);
        connect();
      })
      .catch((error) => {
        if (!authFailed) {
          showLoadError(error);
          // The event stream brings the cameras as soon as the server answers.
          setTimeout(connect, RETRY_MS);
        }
      });
  }

  start();
})();
