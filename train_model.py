#!/usr/bin/env python3
"""Train the mask / no-mask classifier: a frozen ImageNet backbone with a GAP -> Dense -> softmax head (RMSprop).

A thin shim over mask_detection/commands/train.py (installed as the `mask-train` command).
"""

from mask_detection.commands.train import run

if __name__ == "__main__":
    run()
