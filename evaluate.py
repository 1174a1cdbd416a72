#!/usr/bin/env python3
"""Measure the classifier on labelled face crops, or the whole pipeline on real scenes with annotated faces.

A thin shim over mask_detection/commands/evaluate.py (installed as the `mask-evaluate` command).
"""

from mask_detection.commands.evaluate import run

if __name__ == "__main__":
    run()
