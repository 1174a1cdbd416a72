#!/usr/bin/env python3
"""The entrance service: a live page, an HTTP API and MQTT events for one camera, or a dashboard over a fleet.

A thin shim over mask_detection/commands/serve.py (installed as the `mask-serve` command).
"""

from mask_detection.commands.serve import run

if __name__ == "__main__":
    run()
