"""Where the shipped files live, and where a user's own models go.

The shipped face detector and classifier are package data, found from any working directory, installed or not.
Training and export write to ``models/`` in the working directory by default, and detection prefers a classifier
found there (the one you trained) over the shipped one.
"""

from pathlib import Path

SHIPPED_DIR = Path(__file__).resolve().parent / "models"
YUNET_PATH = SHIPPED_DIR / "face_detection_yunet_2023mar.onnx"
MODEL_NAME = "mask_detector"
USER_MODELS_DIR = Path("models")  # relative on purpose: the working directory's
DEFAULT_MODEL_OUT = USER_MODELS_DIR / f"{MODEL_NAME}.keras"


def keras_model_in(folder: Path) -> Path:
    return Path(folder) / f"{MODEL_NAME}.keras"


def fast_export_in(folder: Path) -> Path:
    """The int8 export that detection runs by default, beside its ``.keras`` model."""
    return Path(folder) / f"{MODEL_NAME}.int8.tflite"


def classifier_folders() -> list[Path]:
    """Where detection looks for its default classifier, in order: your own models, then the shipped one."""
    return [USER_MODELS_DIR, SHIPPED_DIR]
