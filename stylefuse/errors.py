"""Errors a user can fix, and the warnings about skipped inputs. Each message is one line that names the problem and
the fix."""

# Named in the messages that send the user to the dataset tool.
DATASET_TOOL = "python -m stylefuse.data.tool"


class StylefuseError(Exception):
    """Base class: printed as a one-line `error: ...` by the command-line jobs, without a traceback."""


class DatasetError(StylefuseError, ValueError):
    """A dataset path, image or label file that cannot be used for training."""


class DatasetNotFoundError(DatasetError):
    """The dataset path does not exist; the message says how to get the data."""

    def __init__(self, path: str, hint: str | None = None) -> None:
        self.path = path
        hint = hint or (f"set dataset.path=... (or the STYLEFUSE_DATA folder) to a folder or zip of images; "
                        f"{DATASET_TOOL} --source <images> --dest <out.zip> --resolution <N> makes one")
        super().__init__(f"dataset not found: {path}; {hint}")


class NetworkFileError(StylefuseError, ValueError):
    """A network file (pickle, checkpoint, URL) that cannot be loaded, or that is refused for safety."""


class ConfigError(StylefuseError, ValueError):
    """A configuration value that is out of range or inconsistent with the data or the network."""


class TargetError(StylefuseError, ValueError):
    """A target image (or folder of them) that cannot be projected."""


class AlignmentError(StylefuseError, ValueError):
    """A photo that cannot be aligned: unreadable, or without a face the landmark detector finds."""


class SaveError(StylefuseError, OSError):
    """A file that could not be written (disk full, no permission, a folder gone); the previous version is kept."""


class MissingExtraError(StylefuseError, ImportError):
    """A feature whose optional dependencies are not installed; the message gives the `pip install` line."""


class CorruptImageWarning(UserWarning):
    """An image could not be read (or had the wrong shape) and was skipped."""
