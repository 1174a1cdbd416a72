#!/usr/bin/env python3
"""Live mask detection on a camera, a video file or a stream.

A thin shim over mask_detection/commands/detect_webcam.py (installed as the `mask-detect-webcam` command).
"""

from mask_detection.commands.detect_webcam import run

if __name__ == "__main__":
    run()
