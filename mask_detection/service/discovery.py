"""Home Assistant MQTT discovery for one camera: a device with a problem sensor, people counts and an event entity.

Home Assistant reads retained configs on ``<discovery_prefix>/<component>/<node>/<object>/config`` and makes the
entities; each entity follows the camera's availability topic, so it shows "unavailable" while the camera is
offline. The configs use the full key names (not the abbreviations) so that people can read them.
"""

import re
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..classes import class_info
from .records import EVENT_TYPES

if TYPE_CHECKING:  # a type only: mqtt imports this module
    from .mqtt import MqttSettings

Config = dict[str, Any]


def device_id(settings: "MqttSettings", camera: str) -> str:
    """The camera's device identifier in Home Assistant (also the node id of its discovery topics):
    ``mask_detection_<camera>`` under the default prefix; fleets under other prefixes do not collide."""
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', settings.prefix)}_{camera}"


def discovery_messages(settings: "MqttSettings", camera: str, class_names: list[str]) -> list[tuple[str, Config]]:
    """(topic, config) for every entity of the camera, to publish retained."""
    node = device_id(settings, camera)
    state_topic = settings.topic(camera, "state")
    common: Config = {
        # Its payloads are Home Assistant's defaults, "online" and "offline".
        "availability_topic": settings.topic(camera, "availability"),
        "device": {
            "identifiers": [node],
            "name": f"Mask check {camera}",
            "manufacturer": "mask_detection",
            "model": "Entrance camera",
            "sw_version": __version__,
        },
        "origin": {"name": "mask_detection", "sw_version": __version__},
    }

    def entity(component: str, object_id: str, config: Config) -> tuple[str, Config]:
        topic = f"{settings.discovery_prefix}/{component}/{node}/{object_id}/config"
        return topic, {"unique_id": f"{node}_{object_id}", **config, **common}

    messages = [
        entity(
            "binary_sensor",
            "no_mask_alert",
            {
                "name": "Person without mask in view",
                "device_class": "problem",
                "state_topic": state_topic,
                "value_template": "{{ 'ON' if value_json.alert else 'OFF' }}",
                "payload_on": "ON",
                "payload_off": "OFF",
            },
        ),
        entity("sensor", "in_view", _count("People in view", state_topic, "value_json.in_view")),
    ]
    # One count per class the model names (with mask, without mask, and any other it has).
    for name in class_names:
        label = class_info(name, class_names).display
        value = f"value_json.in_view_by_class[{name!r}] | default(0)"
        messages.append(
            entity(
                "sensor",
                "in_view_" + re.sub(r"[^A-Za-z0-9_-]", "_", name),
                _count(f"In view: {label}", state_topic, value),
            )
        )
    messages.append(
        entity(
            "event",
            "person",
            {
                "name": "Person",
                "state_topic": settings.topic(camera, "events"),
                "event_types": list(EVENT_TYPES),
                # Home Assistant wants {"event_type": ...}; the rest become the event's attributes.
                "value_template": (
                    "{{ {'event_type': value_json.type, 'id': value_json.id, 'track': value_json.track, "
                    "'label': value_json.after.label, 'alert': value_json.alert} | to_json }}"
                ),
            },
        )
    )
    return messages


def _count(name: str, state_topic: str, value: str) -> Config:
    return {
        "name": name,
        "state_topic": state_topic,
        "value_template": "{{ " + value + " }}",
        "unit_of_measurement": "people",
        "state_class": "measurement",
        "icon": "mdi:account-group",
    }
