"""Face-mask detection for entrance checks: find every face in a photo, a video or a live camera and say mask or
no mask, in real time on an ordinary CPU.

The small public API (see docs/library.md)::

    import mask_detection as md

    pipeline = md.load_pipeline()
    faces = md.detect_image("photo.jpg", pipeline)           # [md.Detection]
    for frame in md.follow_video("entrance.mp4", pipeline):  # md.FrameResult, one per frame
        ...

The command lines (loader.py, train_model.py, detect_image.py, detect_webcam.py, ...) are thin layers over this
package. Names are loaded on first use, and heavy libraries (TensorFlow) inside functions, so that importing the
package and ``--help`` stay fast.
"""

__version__ = "0.3.0"  # the one place: pyproject.toml reads it, trained models record it

INPUT_SIZE = 224  # classifier input by default: RGB uint8, INPUT_SIZE x INPUT_SIZE (loader.py --input-size)
MIN_INPUT_SIZE = 32  # the backbones shrink a picture 32 times: a smaller one has no feature map left

# Public name -> the module that defines it.
_PUBLIC = {
    "load_pipeline": "pipeline",
    "detect_image": "api",
    "follow_video": "api",
    "Detection": "detections",
    "Face": "detections",
    "FrameResult": "results",
    "PersonEvent": "results",
    "PeopleCounts": "results",
    "MaskPipeline": "pipeline",
    "PeoplePipeline": "people",
    "TrackingConfig": "people",
    "DecisionRule": "decision",
}

__all__ = [
    "__version__",
    "load_pipeline",
    "detect_image",
    "follow_video",
    "Detection",
    "Face",
    "FrameResult",
    "PersonEvent",
    "PeopleCounts",
    "MaskPipeline",
    "PeoplePipeline",
    "TrackingConfig",
    "DecisionRule",
]


def __getattr__(name: str):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'mask_detection' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # loaded once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
