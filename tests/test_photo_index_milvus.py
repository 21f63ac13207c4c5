"""The Milvus backend (milvus-lite: the same client API as a Milvus server) gives what the faiss index gives."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace

import pytest
from PIL import Image
from tiny_models import save_trained_tiny_model

from sapiensid_cli import main
from sapiensid_hf.inference import load_pipeline
from sapiensid_hf.photo_index import PhotoIndex, PhotoIndexError, build_index
from sapiensid_hf.photo_index.milvus_backend import WRITER_PROPERTY, MilvusPhotoIndex

PHOTOS = ("face_a_1.jpg", "face_a_2.jpg", "face_b_1.jpg", "two_men.jpg", "street_bus.jpg")


class SameScore(float):
    """A score that equals another within float32 rounding: the two backends sum in different orders, and
    rounding both to a fixed number of decimals can still split a value lying on a rounding boundary."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, float) and abs(self - other) <= 2e-5

    __hash__ = float.__hash__


def hits_of(results):
    return [[(hit.path, hit.person_index, SameScore(hit.score)) for hit in hits] for hits in results]


@pytest.mark.parametrize("all_people", [False, True])
def test_milvus_lite_equals_the_faiss_index(pipeline, people_dir, tmp_path, all_people, monkeypatch, capfd):
    # Stored rows are read 2 at a time: every write below reads them across several pages.
    monkeypatch.setattr("sapiensid_hf.photo_index.milvus_backend.STORED_PAGE_ROWS", 2)
    album = tmp_path / "album"
    album.mkdir()
    for name in PHOTOS[:4]:
        shutil.copy(people_dir / name, album / name)
    photos = sorted(album.iterdir())
    build_index(pipeline, photos, tmp_path / "album.sidx", all_people=all_people)
    milvus = MilvusPhotoIndex(str(tmp_path / "album.db"))
    milvus.build(pipeline, photos, all_people=all_people)
    queries = pipeline.embed([str(people_dir / "face_a_3.jpg"), str(people_dir / "street_bus.jpg")]).embeddings
    faiss_hits = PhotoIndex.open(tmp_path / "album.sidx").search(queries, 10)
    assert hits_of(milvus.search(queries, 10)) == hits_of(faiss_hits)

    # grow and shrink both the same way: an unchanged photo is skipped, a changed one replaced
    shutil.copy(people_dir / PHOTOS[4], album / PHOTOS[4])
    Image.open(people_dir / "face_b_1.jpg").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(album / "face_b_1.jpg")
    from sapiensid_hf.photo_index import add_to_index, remove_from_index

    if all_people:  # as built before the cuts were recorded (one cut a person): both add from one cut
        manifest_file = next((tmp_path / "album.sidx").glob("v[0-9]*")) / "manifest.json"
        manifest_file.write_text(json.dumps({**json.loads(manifest_file.read_text()), "person_frame_scales": None}))
        milvus._set_manifest(replace(milvus.manifest, person_frame_scales=None))
    first = add_to_index(pipeline, tmp_path / "album.sidx", sorted(album.iterdir()))
    second = milvus.add(pipeline, sorted(album.iterdir()))
    assert (second.added, second.replaced, second.unchanged) == (first.added, first.replaced, first.unchanged)
    remove_from_index(tmp_path / "album.sidx", [album / "two_men.jpg"])
    milvus.remove([album / "two_men.jpg"])
    faiss_hits = PhotoIndex.open(tmp_path / "album.sidx").search(queries, 10)
    assert hits_of(milvus.search(queries, 10)) == hits_of(faiss_hits)
    assert milvus.manifest.rows == len(PhotoIndex.open(tmp_path / "album.sidx").rows)
    stored_ids = [row["id"] for row in milvus.stored()]
    assert len(stored_ids) == len(set(stored_ids)) == milvus.manifest.rows > 2
    assert "client-side ts" not in capfd.readouterr().err  # milvus-lite's note on every read is not shown


def test_another_model_is_refused_and_the_cli_searches_milvus(pipeline, model_dir, people_dir, tmp_path, capsys):
    uri = str(tmp_path / "people.db")
    assert main(["index", "build", str(people_dir / "face_a_1.jpg"), str(people_dir / "face_a_2.jpg"), "--output", uri,
                 "--backend", "milvus", "--model", str(model_dir)]) == 0  # fmt: skip
    capsys.readouterr()
    query = people_dir / "face_a_2.jpg"
    assert main(["search", str(query), "--index", uri, "--backend", "milvus", "--top-k", "1", "--model", str(model_dir)]) == 0
    first = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(f"| {query} | 1 |"))
    assert "| 1.0000 |" in first and str(query.resolve()) in first
    other = load_pipeline(save_trained_tiny_model(tmp_path / "other", seed=1))
    with pytest.raises(PhotoIndexError, match="was embedded by another model"):
        MilvusPhotoIndex(uri).check_model(other)
    with pytest.raises(PhotoIndexError, match="no collection 'nothing_here'"):
        _ = MilvusPhotoIndex(uri, "nothing_here").manifest
    milvus = MilvusPhotoIndex(uri)
    milvus._set_manifest(replace(milvus.manifest, person_frame_scales="wide"))
    with pytest.raises(PhotoIndexError, match="collection 'sapiensid_photos': person_frame_scales is not a list of scales"):
        _ = milvus.manifest


def _two_photo_collection(pipeline, people_dir, tmp_path):
    album = tmp_path / "album"
    album.mkdir()
    for name in ("face_a_1.jpg", "face_b_1.jpg"):
        shutil.copy(people_dir / name, album / name)
    milvus = MilvusPhotoIndex(str(tmp_path / "album.db"))
    milvus.build(pipeline, sorted(album.iterdir()))
    return album, milvus


def _set_lease(milvus, holder, expires):
    lease = {"token": "theirs", "holder": holder, "expires": expires}
    milvus.client.alter_collection_properties(milvus.collection, properties={WRITER_PROPERTY: json.dumps(lease)})


def test_a_second_writer_is_refused_while_the_lease_is_held_and_a_dead_writers_lease_expires(pipeline, people_dir, tmp_path):
    album, milvus = _two_photo_collection(pipeline, people_dir, tmp_path)
    _set_lease(milvus, "elsewhere pid 7", time.time() + 600)
    with pytest.raises(PhotoIndexError, match="is being written by elsewhere pid 7"):
        milvus.add(pipeline, sorted(album.iterdir()))
    with pytest.raises(PhotoIndexError, match="is being written by elsewhere pid 7"):
        milvus.remove([album / "face_a_1.jpg"])
    assert milvus.manifest.rows == 2  # nothing was written
    _set_lease(milvus, "elsewhere pid 7", time.time() - 1)  # that writer died an hour ago
    assert milvus.remove([album / "face_a_1.jpg"]).rows == 1
    assert json.loads(milvus._properties()[WRITER_PROPERTY]) == {}  # released


def test_a_killed_add_loses_nothing_and_the_next_write_keeps_the_newest_rows(pipeline, people_dir, tmp_path, monkeypatch):
    album, milvus = _two_photo_collection(pipeline, people_dir, tmp_path)
    Image.open(people_dir / "face_b_1.jpg").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(album / "face_b_1.jpg")
    real_delete = milvus._delete_ids

    def killed(ids):
        if ids:
            raise KeyboardInterrupt("killed between the insert and the delete")
        real_delete(ids)

    monkeypatch.setattr(milvus, "_delete_ids", killed)
    with pytest.raises(KeyboardInterrupt):
        milvus.add(pipeline, sorted(album.iterdir()))
    rows = milvus.stored()
    assert len(rows) == 3 and len({row["content_hash"] for row in rows if row["path"].endswith("face_b_1.jpg")}) == 2
    monkeypatch.setattr(milvus, "_delete_ids", real_delete)
    report = milvus.add(pipeline, sorted(album.iterdir()))
    assert report.added == [] and report.unchanged == 2 and report.rows == 2  # the stale row is gone
    build_index(pipeline, sorted(album.iterdir()), tmp_path / "fresh.sidx")
    queries = pipeline.embed([str(people_dir / "face_a_3.jpg")]).embeddings
    assert hits_of(milvus.search(queries, 10)) == hits_of(PhotoIndex.open(tmp_path / "fresh.sidx").search(queries, 10))
