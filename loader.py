#!/usr/bin/env python3
"""Turn a dataset folder (one sub-folder per class) into one arrays file for training.

A thin shim over mask_detection/commands/loader.py (installed as the `mask-loader` command).
"""

from mask_detection.commands.loader import run

if __name__ == "__main__":
    run()
