"""Errors that the command lines turn into one clear line on stderr and exit code 2."""


class MaskDetectionError(Exception):
    """A user-facing error: the message is complete and is shown as it is, without a traceback."""


class DatasetError(MaskDetectionError):
    pass


class ImageDecodeError(MaskDetectionError):
    pass


class ModelError(MaskDetectionError):
    pass


class WeightsError(MaskDetectionError):
    pass
