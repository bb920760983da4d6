"""Training data: datasets (folder, zip, LSUN LMDB, procedural toy faces), the Lightning data module, the tool."""

from stylefuse.data.datamodule import ImageDataModule
from stylefuse.data.datasets import Dataset, ImageFolderDataset, LmdbDataset, build_dataset, open_dataset
from stylefuse.data.toy import ToyDataset
from stylefuse.errors import CorruptImageWarning, DatasetNotFoundError

__all__ = [
    "CorruptImageWarning",
    "Dataset",
    "DatasetNotFoundError",
    "ImageDataModule",
    "ImageFolderDataset",
    "LmdbDataset",
    "ToyDataset",
    "build_dataset",
    "open_dataset",
]
