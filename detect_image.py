#!/usr/bin/env python3
"""Find every face in photos and say mask or no mask.

A thin shim over mask_detection/commands/detect_image.py (installed as the `mask-detect-image` command).
"""

from mask_detection.commands.detect_image import run

if __name__ == "__main__":
    run()
