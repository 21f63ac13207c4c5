"""A photo index's rows as a Hugging Face `datasets.Dataset`, for users who search with `datasets`' own
faiss integration (`add_faiss_index` / `get_nearest_examples` / `save_faiss_index`) and no CLI."""

from __future__ import annotations

import os
from typing import Any

import datasets
import numpy as np

from .index import PhotoIndex


def index_as_dataset(index: PhotoIndex | str | os.PathLike, searchable_only: bool = True) -> datasets.Dataset:
    """Columns `path`, `person_index` (-1: a per-photo row), `box`, `face_found`, `embedding` (unit
    length); rows without a person are left out unless `searchable_only` is False."""
    if not isinstance(index, PhotoIndex):
        index = PhotoIndex.open(index)
    rows = index.rows
    keep = rows.person_found if searchable_only else np.ones(len(rows), bool)
    picked = rows.take(keep)
    return datasets.Dataset.from_dict(
        {
            "path": picked.paths,
            "person_index": picked.person_index.tolist(),
            "box": picked.boxes.tolist(),
            "face_found": picked.face_found.tolist(),
            "embedding": picked.embeddings.tolist(),
        },
        features=datasets.Features(
            {
                "path": datasets.Value("string"),
                "person_index": datasets.Value("int64"),
                "box": datasets.Sequence(datasets.Value("float32"), length=4),
                "face_found": datasets.Value("bool"),
                "embedding": datasets.Sequence(datasets.Value("float32"), length=index.manifest.dimension),
            }
        ),
    )


def add_cosine_faiss_index(dataset: datasets.Dataset, column: str = "embedding") -> Any:
    """`dataset.add_faiss_index` with inner product, which is the cosine similarity on these unit vectors."""
    import faiss

    return dataset.add_faiss_index(column=column, metric_type=faiss.METRIC_INNER_PRODUCT)


__all__ = ["add_cosine_faiss_index", "index_as_dataset"]
