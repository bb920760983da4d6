"""Errors a user can fix. Each message is one line that names the problem and the fix."""


class StylefuseError(Exception):
    """Base class: printed as a one-line `error: ...` by the command-line jobs, without a traceback."""


class DatasetError(StylefuseError, ValueError):
    """A dataset path, image or label file that cannot be used for training."""


class NetworkFileError(StylefuseError, ValueError):
    """A network file (pickle, checkpoint, URL) that cannot be loaded, or that is refused for safety."""


class ConfigError(StylefuseError, ValueError):
    """A configuration value that is out of range or inconsistent with the data or the network."""


class TargetError(StylefuseError, ValueError):
    """A target image (or folder of them) that cannot be projected."""


class AlignmentError(StylefuseError, ValueError):
    """A photo that cannot be aligned: unreadable, or without a face the landmark detector finds."""


class MissingExtraError(StylefuseError, ImportError):
    """A feature whose optional dependencies are not installed; the message gives the `pip install` line."""
