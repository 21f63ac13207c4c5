"""The same photo index in Milvus: a collection that can outgrow one machine, with no code change.

`pymilvus.MilvusClient(uri)` talks to a Milvus server or cluster (``http://host:19530``) or, for a local
file path (``album.db``), to milvus-lite embedded in this process: the same client API, so what is tested
against milvus-lite runs against a server. Install with ``pip install "sapiensid-hf[milvus]"``.

Collection schema (one row per photo or person, as the faiss index's rows.parquet):
``id`` (INT64, primary: row number), ``vector`` (FLOAT_VECTOR, the L2-normalised embedding, inner-product
metric = cosine), ``path``, ``content_hash`` (VARCHAR), ``person_index`` (INT64, -1 per photo), ``box``
(FLOAT_VECTOR of 4, photo pixels; -1 when unknown), ``person_found`` / ``face_found`` (BOOL). The collection's
property "sapiensid.manifest" holds the manifest (model, weights fingerprint, flip, dimension, per-person) as JSON; search
checks the model by it and refuses another, as the faiss index does. Rows without a person are stored (so
`add` knows the photo) and filtered out of every search.

Writers. Milvus has no transactions, so two rules keep a collection right:

- **One writer at a time**: build, add and remove hold a lease, the collection property
  "sapiensid.writer" (a random token, who holds it, until when). A second writer finds it and is refused,
  naming the holder; a lease whose writer died expires after `LEASE_SECONDS`. Milvus has no compare-and-set,
  so the lease is written, then read back: two writers starting within the same few milliseconds can
  still both pass (a documented limit; one writing service avoids it).
- **A killed add loses nothing**: the changed photos' new rows are inserted (ids after every stored id)
  before their previous rows are deleted by id. Killed in between, a photo has rows of two contents for
  a moment; the next add or remove keeps the newest content's rows (the highest ids) and deletes the rest.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..inference import weights_fingerprint
from ..processing.people_in_image import PERSON_FRAME_SCALES, PERSON_FRAMING
from ..small_person_framing import SMALL_PERSON_SHARE
from .index import BuildReport, SearchHit, embed_rows, photos_to_embed
from .store import Manifest, PhotoIndexError, Rows, checked_manifest

DEFAULT_COLLECTION = "sapiensid_photos"
MANIFEST_PROPERTY = "sapiensid.manifest"  # a collection property: the manifest as JSON
WRITER_PROPERTY = "sapiensid.writer"  # a collection property: the writer's lease as JSON
LEASE_SECONDS = 3600.0  # a writer that died without releasing its lease blocks others this long at most
OUTPUT_FIELDS = ["path", "content_hash", "person_index", "box", "person_found", "face_found"]


def _client(uri: str):
    try:
        from pymilvus import MilvusClient
    except ImportError as error:
        raise PhotoIndexError('the Milvus backend needs pymilvus (pip install "sapiensid-hf[milvus]")') from error
    return MilvusClient(uri)


# Rows per page when every stored row is read (well under a Milvus server's 16,384 rows a query).
STORED_PAGE_ROWS = 4096


@contextmanager
def _quiet_client_side_timestamp() -> Iterator[None]:
    """milvus-lite gives a query iterator no server timestamp, and pymilvus warns about it on stderr at
    every read; the iterator then pins the client's clock instead, which is right for one writer."""
    def note(record: logging.LogRecord) -> bool:
        return "use client-side ts" not in record.getMessage()

    logger = logging.getLogger("pymilvus.client.iterator.query_iterator")
    logger.addFilter(note)
    try:
        yield
    finally:
        logger.removeFilter(note)


class MilvusPhotoIndex:
    """A photo index stored in the Milvus collection `collection` at `uri`."""

    def __init__(self, uri: str, collection: str = DEFAULT_COLLECTION):
        self.uri, self.collection = os.fspath(uri), collection
        self.client = _client(self.uri)

    # -- manifest -------------------------------------------------------------------------------------

    @property
    def exists(self) -> bool:
        return self.client.has_collection(self.collection)

    @property
    def manifest(self) -> Manifest:
        if not self.exists:
            raise PhotoIndexError(f"Milvus {self.uri}: no collection {self.collection!r} (make one with `sapiensid index build --backend milvus`)")
        try:
            manifest = Manifest(**json.loads(self._properties().get(MANIFEST_PROPERTY, "")))
        except (json.JSONDecodeError, TypeError) as error:
            raise PhotoIndexError(f"Milvus {self.uri}: collection {self.collection!r} is not a sapiensid photo index") from error
        return checked_manifest(manifest, f"Milvus {self.uri}: collection {self.collection!r}")

    def check_model(self, pipeline: Any) -> None:
        manifest, fingerprint = self.manifest, weights_fingerprint(pipeline.model)
        if manifest.weights_fingerprint != fingerprint:
            raise PhotoIndexError(
                f"Milvus collection {self.collection!r} at {self.uri} was embedded by another model or embedding rule ({manifest.model}, "
                f"weights {manifest.weights_fingerprint}); this is {pipeline.description} (weights {fingerprint})"
            )

    # -- rows ------------------------------------------------------------------------------------------

    def _create(self, manifest: Manifest) -> None:
        from pymilvus import DataType

        schema = self.client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=manifest.dimension)
        schema.add_field("path", DataType.VARCHAR, max_length=4096)
        schema.add_field("content_hash", DataType.VARCHAR, max_length=64)
        schema.add_field("person_index", DataType.INT64)
        schema.add_field("box", DataType.FLOAT_VECTOR, dim=4)
        schema.add_field("person_found", DataType.BOOL)
        schema.add_field("face_found", DataType.BOOL)
        index_params = self.client.prepare_index_params()
        index_params.add_index(field_name="vector", index_type="FLAT", metric_type="IP")
        index_params.add_index(field_name="box", index_type="FLAT", metric_type="L2")
        self.client.create_collection(self.collection, schema=schema, index_params=index_params)
        self._set_manifest(manifest)

    def _set_manifest(self, manifest: Manifest) -> None:
        self.client.alter_collection_properties(self.collection, properties={MANIFEST_PROPERTY: json.dumps(asdict(manifest))})

    def _properties(self) -> dict[str, str]:
        return self.client.describe_collection(self.collection).get("properties", {}) or {}

    def _lease(self) -> dict:
        """The writer lease as stored: {} when nobody holds it."""
        return json.loads(self._properties().get(WRITER_PROPERTY) or "{}")

    @contextmanager
    def writer_lease(self) -> Iterator[None]:
        """Hold the collection's writer lease for the block; a second writer is refused at once."""
        holder = self._lease()
        if holder and holder.get("expires", 0) > time.time():
            raise PhotoIndexError(
                f"Milvus collection {self.collection!r} at {self.uri} is being written by {holder.get('holder')} "
                f"(lease until {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(holder['expires']))}); "
                "a second writer is refused: try again when it is done"
            )
        lease = {"token": uuid.uuid4().hex, "holder": f"{socket.gethostname()} pid {os.getpid()}", "expires": time.time() + LEASE_SECONDS}
        self.client.alter_collection_properties(self.collection, properties={WRITER_PROPERTY: json.dumps(lease)})
        if self._lease().get("token") != lease["token"]:
            raise PhotoIndexError(f"Milvus collection {self.collection!r} at {self.uri}: another writer took the lease at the same moment; try again")
        try:
            yield
        finally:
            if self._lease().get("token") == lease["token"]:
                self.client.alter_collection_properties(self.collection, properties={WRITER_PROPERTY: "{}"})

    def _insert(self, rows: Rows, first_id: int) -> None:
        if not len(rows):
            return
        records = [
            {
                "id": first_id + i, "vector": rows.embeddings[i].tolist(), "path": rows.paths[i],
                "content_hash": rows.content_hashes[i], "person_index": int(rows.person_index[i]),
                "box": rows.boxes[i].tolist(), "person_found": bool(rows.person_found[i]), "face_found": bool(rows.face_found[i]),
            }
            for i in range(len(rows))
        ]  # fmt: skip
        self.client.insert(self.collection, records)
        self.client.flush(self.collection)

    def stored(self) -> list[dict]:
        """Every row's id, path and content hash, read in pages (a Milvus server caps what one query returns)."""
        fields = ["id", "path", "content_hash", "person_found"]
        with _quiet_client_side_timestamp():
            pages = self.client.query_iterator(self.collection, batch_size=STORED_PAGE_ROWS, filter="id >= 0", output_fields=fields)
            rows: list[dict] = []
            try:
                while page := pages.next():
                    rows.extend(page)
            finally:
                pages.close()
        return rows

    def _newest_rows(self) -> list[dict]:
        """The stored rows, without those an interrupted add left behind: per path, the rows of the content
        written last (that of its highest id); the others are deleted."""
        stored = self.stored()
        newest: dict[str, tuple[int, str]] = {}
        for row in stored:
            if row["id"] > newest.get(row["path"], (-1, ""))[0]:
                newest[row["path"]] = (row["id"], row["content_hash"])
        stale = [row["id"] for row in stored if row["content_hash"] != newest[row["path"]][1]]
        self._delete_ids(stale)
        return [row for row in stored if row["content_hash"] == newest[row["path"]][1]]

    def _delete_ids(self, ids: list[int]) -> None:
        if ids:
            self.client.delete(self.collection, ids=[int(i) for i in ids])
            self.client.flush(self.collection)

    # -- the jobs --------------------------------------------------------------------------------------

    def build(self, pipeline: Any, photos: list[Path], all_people: bool = False, flip: bool = True, model_label: str | None = None) -> BuildReport:
        if self.exists:
            raise PhotoIndexError(f"Milvus {self.uri}: collection {self.collection!r} already exists: use `sapiensid index add`")
        photos = [Path(photo).resolve() for photo in photos]
        rows, skipped = embed_rows(pipeline, photos, all_people, flip)
        if not len(rows):
            raise PhotoIndexError("none of the photos could be read: nothing to index")
        manifest = Manifest(
            model=model_label or pipeline.description, weights_fingerprint=weights_fingerprint(pipeline.model), flip=flip,
            dimension=rows.embeddings.shape[1], index_type="milvus FLAT IP", per_person=all_people, rows=len(rows),
            person_frame_scales=list(PERSON_FRAME_SCALES) if all_people else None,
            person_framing=PERSON_FRAMING if all_people else None,
            small_person_share=None if all_people else SMALL_PERSON_SHARE,
        )  # fmt: skip
        self._create(manifest)
        with self.writer_lease():
            self._insert(rows, 0)
        return BuildReport(Path(self.uri), len(rows), int(rows.person_found.sum()), added=sorted(set(rows.paths)), skipped=skipped)

    def add(self, pipeline: Any, photos: list[Path]) -> BuildReport:
        self.check_model(pipeline)
        manifest = self.manifest
        with self.writer_lease():
            before = self._newest_rows()
            known = {row["path"]: row["content_hash"] for row in before}
            todo, changed, unchanged, skipped = photos_to_embed([Path(photo).resolve() for photo in photos], known)
            rows, failed = embed_rows(pipeline, todo, manifest.per_person, manifest.flip, **manifest.add_rules(f"index {self.uri}"))
            embedded = sorted(set(rows.paths))
            if embedded:
                # New rows first, then the previous ones by id: killed in between, nothing is lost.
                self._insert(rows, max((row["id"] for row in before), default=-1) + 1)
                self._delete_ids([row["id"] for row in before if row["path"] in set(embedded)])
            stored = self.stored()
            self._set_manifest(Manifest(**{**asdict(manifest), "rows": len(stored)}))
        return BuildReport(Path(self.uri), len(stored), sum(bool(row["person_found"]) for row in stored), added=embedded,
                           replaced=sorted(set(changed) & set(embedded)), unchanged=unchanged, skipped=skipped + failed)  # fmt: skip

    def remove(self, photos: list[str | os.PathLike]) -> BuildReport:
        targets = sorted({os.fspath(Path(photo).resolve()) for photo in photos})
        manifest = self.manifest
        with self.writer_lease():
            self._newest_rows()
            self._delete_paths(targets)
            stored = self.stored()
            self._set_manifest(Manifest(**{**asdict(manifest), "rows": len(stored)}))
        return BuildReport(Path(self.uri), len(stored), sum(bool(row["person_found"]) for row in stored), removed=targets)

    def _delete_paths(self, paths: list[str]) -> None:
        if paths:
            self.client.delete(self.collection, filter=f"path in {json.dumps(paths)}")
            self.client.flush(self.collection)

    def searchable_counts(self) -> tuple[int, int]:
        """(rows a search ranks, of which show a face), counted by the server."""
        counts = []
        for condition in ("person_found == true", "person_found == true and face_found == true"):
            answer = self.client.query(self.collection, filter=condition, output_fields=["count(*)"])
            counts.append(int(answer[0]["count(*)"]))
        return counts[0], counts[1]

    def search(self, queries: np.ndarray, top_k: int) -> list[list[SearchHit]]:
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if queries.shape[1] != self.manifest.dimension:
            raise PhotoIndexError(f"Milvus collection {self.collection!r} holds {self.manifest.dimension}-d embeddings, the queries are {queries.shape[1]}-d")
        answers = self.client.search(
            self.collection, data=queries.tolist(), limit=top_k, filter="person_found == true",
            output_fields=OUTPUT_FIELDS, search_params={"metric_type": "IP"}, anns_field="vector",
        )  # fmt: skip
        results = []
        for answer in answers:
            hits = []
            for match in answer:
                entity = match["entity"]
                box = tuple(float(v) for v in entity["box"]) if entity["person_index"] >= 0 else None
                hits.append(
                    SearchHit(entity["path"], int(entity["person_index"]), box, float(match["distance"]), int(match["id"]), bool(entity["face_found"]))
                )
            results.append(hits)
        return results


__all__ = ["DEFAULT_COLLECTION", "LEASE_SECONDS", "MilvusPhotoIndex"]
