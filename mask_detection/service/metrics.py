"""``GET /metrics``: the service's numbers in Prometheus' text format, read from the hub at each scrape."""

from collections.abc import Iterator
from typing import Any

from .hub import Hub


def render_metrics(hub: Hub) -> tuple[bytes, str]:
    """(body, content type) of one scrape."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_HubCollector(hub))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _HubCollector:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        prefix = "mask_detection_"
        up = GaugeMetricFamily(
            prefix + "camera_up", "1 while the camera delivers frames (status live)", labels=["camera"]
        )
        fps = GaugeMetricFamily(prefix + "camera_fps", "frames processed per second", labels=["camera"])
        age = GaugeMetricFamily(
            prefix + "camera_frame_age_seconds", "seconds since the latest frame was processed", labels=["camera"]
        )
        in_view = GaugeMetricFamily(prefix + "people_in_view", "people in view now", labels=["camera"])
        in_view_class = GaugeMetricFamily(
            prefix + "people_in_view_by_label", "people in view now by current verdict", labels=["camera", "label"]
        )
        people = GaugeMetricFamily(
            prefix + "people_seen",
            "people counted since the camera's run started, by verdict",
            labels=["camera", "label"],
        )
        alert = GaugeMetricFamily(prefix + "alert", "1 while a person without a mask is in view", labels=["camera"])
        viewers = GaugeMetricFamily(prefix + "stream_viewers", "live video (MJPEG) clients", labels=["camera"])
        events = CounterMetricFamily(prefix + "events", "person events stored, by type", labels=["camera", "type"])
        errors = CounterMetricFamily(
            prefix + "errors", "failures: lost streams, failed stores, publishes or webhooks", labels=["camera"]
        )
        now = self.hub.clock()
        for view in self.hub.cameras():
            state, name = view.state, view.name
            up.add_metric([name], 1.0 if state.get("status") == "live" else 0.0)
            fps.add_metric([name], float(state.get("fps") or 0.0))
            if view.last_frame is not None:
                age.add_metric([name], max(0.0, now - view.last_frame))
            in_view.add_metric([name], float(state.get("in_view") or 0))
            for label, n in (state.get("in_view_by_class") or {}).items():
                in_view_class.add_metric([name, label], float(n))
            counts = state.get("people") or {}
            for label, n in (counts.get("by_class") or {}).items():
                people.add_metric([name, label], float(n))
            if "unjudged" in counts:
                people.add_metric([name, "not_judged"], float(counts["unjudged"]))
            alert.add_metric([name], 1.0 if state.get("alert") else 0.0)
            viewers.add_metric([name], float(view.feed.viewers))
            for kind, n in sorted(view.events.items()):
                events.add_metric([name, kind], float(n))
            errors.add_metric([name], float(view.errors))
        yield from (up, fps, age, in_view, in_view_class, people, alert, viewers, events, errors)
        yield GaugeMetricFamily(
            prefix + "event_stream_clients", "live event (SSE) clients", value=self.hub.bus.subscribers
        )
        yield CounterMetricFamily(
            prefix + "photos_classified", "photos through POST /api/classify", value=self.hub.classified
        )
        yield CounterMetricFamily(
            prefix + "uploads_rejected", "uploads refused (too big, not a picture)", value=self.hub.rejected_uploads
        )
