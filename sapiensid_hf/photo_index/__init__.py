"""A persistent, searchable index of a photo collection (`sapiensid index`, `sapiensid search --index`)."""

from .index import BuildReport, PhotoIndex, SearchHit, add_to_index, build_index, remove_from_index
from .store import PhotoIndexError

__all__ = ["BuildReport", "PhotoIndex", "PhotoIndexError", "SearchHit", "add_to_index", "build_index", "remove_from_index"]
