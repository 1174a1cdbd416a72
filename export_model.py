#!/usr/bin/env python3
"""Export a trained classifier (.keras) to TFLite for fast CPU and small-device inference with LiteRT.

A thin shim over mask_detection/commands/export.py (installed as the `mask-export` command).
"""

from mask_detection.commands.export import run

if __name__ == "__main__":
    run()
