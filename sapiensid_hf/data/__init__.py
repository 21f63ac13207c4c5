"""Benchmark folders and files as `datasets.Dataset` objects.

Every loader returns one dataset with at least the columns `image`, `path`, `pid`, `camid`,
`clothes_id` (-1 when unknown) and `role` (train / query / gallery / ...), built with
`Dataset.from_generator`. A folder or file that does not have the expected layout raises
`DatasetLayoutError` naming it and the problem.
"""

from .ccvid import load_ccvid
from .common import BASE_COLUMNS, DatasetLayoutError
from .image_folder import load_image_folder
from .lfw_pairs import FacePair, load_lfw_pairs, read_lfw_pairs
from .ltcc import load_ltcc
from .manifest import load_manifest, load_unlabelled_manifest
from .market1501 import load_market1501
from .msmt17 import load_msmt17
from .prcc import load_prcc
from .recordio import RecordIOReader, load_recordio, pack_image_record, unpack_image_record, write_record
from .verification_bin import load_verification_bin, read_verification_bin

__all__ = [
    "BASE_COLUMNS",
    "DatasetLayoutError",
    "FacePair",
    "RecordIOReader",
    "load_ccvid",
    "load_image_folder",
    "load_lfw_pairs",
    "load_ltcc",
    "load_manifest",
    "load_unlabelled_manifest",
    "load_market1501",
    "load_msmt17",
    "load_prcc",
    "load_recordio",
    "load_verification_bin",
    "pack_image_record",
    "read_lfw_pairs",
    "read_verification_bin",
    "unpack_image_record",
    "write_record",
]
