"""Data sets for training supernets and scoring subnets: `load_data(name, ...)` -> DataBundle.

In-memory sets (ImageSet) live on the training device as uint8 and are gathered, augmented and
normalised there batch by batch; large image folders are streamed (ImageFolderStream) with the
same `batches(...)` / `fixed_batches(...)` API.
"""

from efsnas.data.images import ImageSet
from efsnas.data.registry import DATASETS, DataBundle, load_data
from efsnas.data.safe_pickle import safe_load
from efsnas.data.stream import ImageFolderStream

__all__ = ["load_data", "DataBundle", "ImageSet", "ImageFolderStream", "DATASETS", "safe_load"]
