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


class OutputError(MaskDetectionError):
    """An output that cannot be written, or that would replace one of the run's inputs."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP (what ``timeout``, ``docker stop`` and systemd send), handled like Ctrl-C."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = int(signum)
