"""`sapiensid index` on real photos: build / add / remove / search equal exact search, atomic writes, refusals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny_models import save_trained_tiny_model

from sapiensid_cli import main
from sapiensid_hf.inference import load_pipeline
from sapiensid_hf.photo_index import PhotoIndex, PhotoIndexError, add_to_index, build_index, remove_from_index
from sapiensid_hf.photo_index.store import writer_lock
from sapiensid_hf.processing.people_in_image import PERSON_FRAME_SCALES, PERSON_FRAMING

PHOTOS = ("face_a_1.jpg", "face_a_2.jpg", "face_b_1.jpg", "two_men.jpg")
MORE = ("face_a_3.jpg", "street_bus.jpg")


@pytest.fixture
def album(people_dir, tmp_path) -> Path:
    folder = tmp_path / "album"
    folder.mkdir()
    for name in PHOTOS:
        shutil.copy(people_dir / name, folder / name)
    return folder


def exact_ranking(pipeline, query: Path, photos: list[Path]) -> list[tuple[str, float]]:
    embedded = pipeline.embed([str(query)] + [str(photo) for photo in photos])
    scores = embedded.embeddings[1:] @ embedded.embeddings[0]
    order = np.argsort(-scores, kind="stable")
    return [(str(photos[i].resolve()), float(scores[i])) for i in order]


def index_ranking(folder: Path, pipeline, query: Path, k: int) -> list[tuple[str, float]]:
    index = PhotoIndex.open(folder)
    vector = pipeline.embed([str(query)]).embeddings
    return [(hit.path, hit.score) for hit in index.search(vector, k)[0]]


def assert_same_ranking(first, second):
    assert [path for path, _ in first] == [path for path, _ in second]
    np.testing.assert_allclose([s for _, s in first], [s for _, s in second], atol=1e-5)


def test_build_add_remove_search_equal_exact_search(pipeline, album, people_dir, tmp_path):
    folder = tmp_path / "album.sidx"
    report = build_index(pipeline, sorted(album.iterdir()), folder)
    assert report.rows == 4 and report.searchable == 4
    query = people_dir / "face_a_3.jpg"
    assert_same_ranking(index_ranking(folder, pipeline, query, 10), exact_ranking(pipeline, query, sorted(album.iterdir())))

    for name in MORE:  # two new photos: only they are embedded
        shutil.copy(people_dir / name, album / name)
    report = add_to_index(pipeline, folder, sorted(album.iterdir()))
    assert len(report.added) == 2 and report.unchanged == 4 and report.rows == 6
    assert_same_ranking(index_ranking(folder, pipeline, query, 10), exact_ranking(pipeline, query, sorted(album.iterdir())))

    # a changed file is embedded again and replaces its row; an unchanged one is left alone
    Image.open(people_dir / "face_b_1.jpg").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(album / "face_b_1.jpg")
    report = add_to_index(pipeline, folder, sorted(album.iterdir()))
    assert report.replaced == [str((album / "face_b_1.jpg").resolve())] and report.unchanged == 5 and report.rows == 6
    assert_same_ranking(index_ranking(folder, pipeline, query, 10), exact_ranking(pipeline, query, sorted(album.iterdir())))

    report = remove_from_index(folder, [album / "two_men.jpg"])
    assert report.rows == 5
    (album / "two_men.jpg").rename(tmp_path / "two_men.jpg")  # out of the album, or the next add takes it back
    (album / "face_a_1.jpg").unlink()  # gone from disk: reported by add, removed by --missing
    report = add_to_index(pipeline, folder, sorted(album.iterdir()))
    assert report.missing == [str((album / "face_a_1.jpg").resolve())]
    report = remove_from_index(folder, missing=True)
    assert report.removed == [str((album / "face_a_1.jpg").resolve())] and report.rows == 4
    assert_same_ranking(index_ranking(folder, pipeline, query, 10), exact_ranking(pipeline, query, sorted(album.iterdir())))
    assert len(list(folder.glob("v[0-9]*"))) == 1  # older versions are cleaned up


def test_an_add_of_new_photos_grows_the_index_in_place_and_a_replacement_builds_it_again(
    pipeline, album, people_dir, tmp_path, monkeypatch
):
    from sapiensid_hf.photo_index import index as index_module

    folder = tmp_path / "album.sidx"
    build_index(pipeline, sorted(album.iterdir()), folder, index_type="HNSW32")
    built = []
    real_build = index_module.build_faiss_index
    monkeypatch.setattr(index_module, "build_faiss_index", lambda rows, kind: built.append(kind) or real_build(rows, kind))
    for name in MORE:
        shutil.copy(people_dir / name, album / name)
    add_to_index(pipeline, folder, sorted(album.iterdir()))
    assert built == []  # grown in place
    query = people_dir / "face_a_3.jpg"
    assert_same_ranking(index_ranking(folder, pipeline, query, 10), exact_ranking(pipeline, query, sorted(album.iterdir())))
    assert PhotoIndex.open(folder).manifest.index_type == "HNSW32"
    Image.open(people_dir / "face_b_1.jpg").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(album / "face_b_1.jpg")
    add_to_index(pipeline, folder, sorted(album.iterdir()))
    assert built == ["HNSW32"]  # a replaced row renumbers the collection
    assert_same_ranking(index_ranking(folder, pipeline, query, 10), exact_ranking(pipeline, query, sorted(album.iterdir())))


def test_the_command_line_builds_adds_and_searches_an_index(model_dir, album, people_dir, tmp_path, capsys):
    folder = tmp_path / "cli.sidx"
    unreadable = album / "notes.jpg"
    unreadable.write_text("not an image")
    assert main(["index", "build", str(album), "--output", str(folder), "--model", str(model_dir)]) == 0
    captured = capsys.readouterr()  # an unreadable photo is skipped and named, never silently
    assert f"skipped {unreadable.resolve()}" in captured.err and "4 rows, 4 with a person" in captured.out
    unreadable.unlink()
    shutil.copy(people_dir / "face_a_3.jpg", album / "face_a_3.jpg")
    (album / "broken.png").write_bytes(b"\x89PNG broken")
    assert main(["index", "add", str(folder), str(album), "--model", str(model_dir)]) == 0
    captured = capsys.readouterr()
    assert "embedded 1 photo(s)" in captured.out and "skipped" in captured.err and "broken.png" in captured.err
    assert main(["index", "info", str(folder)]) == 0
    assert "rows: 5 (photos) from 5 photo(s)" in capsys.readouterr().out
    query = people_dir / "face_a_3.jpg"
    assert main(["search", str(query), "--index", str(folder), "--top-k", "2", "--model", str(model_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    first = next(line for line in lines if line.startswith(f"| {query} | 1 |"))
    assert first == f"| {query} | 1 | 1.0000 | {(album / 'face_a_3.jpg').resolve()} |"  # a photo index: no person, no box
    assert "| query | rank | score | photo |" in lines


def test_a_per_person_index_names_the_person_and_the_box(pipeline, people_dir, tmp_path, capsys):
    folder = tmp_path / "people.sidx"
    build_index(pipeline, [people_dir / "two_men.jpg", people_dir / "street_bus.jpg"], folder, all_people=True)
    index = PhotoIndex.open(folder)
    assert index.manifest.per_person and len(index.rows) == 4
    own = pipeline.embed_people([people_dir / "street_bus.jpg"]).rows[1]
    hit = index.search(own.embedding[None], 1)[0][0]
    assert hit.path.endswith("street_bus.jpg") and hit.person_index == 1 and hit.score == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(hit.box, own.person.box, atol=1e-3)
    assert index.manifest.person_frame_scales == list(PERSON_FRAME_SCALES)
    assert index.manifest.person_framing == PERSON_FRAMING

    # An index built before the cuts were recorded (one cut a person) is searched with a note.
    model = str(pipeline.source)
    assert main(["search", str(people_dir / "two_men.jpg"), "--index", str(folder), "--model", model]) == 0
    captured = capsys.readouterr()
    assert "note:" not in captured.err.replace("note: no false-match rates", "") and "| query | rank | score | photo | person | box |" in captured.out
    best = next(line for line in captured.out.splitlines() if " | 1 | " in line).strip("| ").split(" | ")
    assert len(best) == 6 and best[4].isdigit() and best[5].startswith("(")  # the person's number and box
    manifest_file = next(folder.glob("v[0-9]*")) / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    del manifest["person_frame_scales"]
    manifest_file.write_text(json.dumps(manifest))
    assert main(["search", str(people_dir / "two_men.jpg"), "--index", str(folder), "--model", model]) == 0
    assert "the index holds people embedded from one cut a person" in capsys.readouterr().err
    assert main(["index", "info", str(folder)]) == 0
    assert "people embedded from one cut a person (written before the cuts were recorded), faces framed around OpenCV's face box" in capsys.readouterr().out
    # An index built before faces were framed around OpenCV's face box: the note and `info` say so.
    manifest_file.write_text(json.dumps({key: value for key, value in manifest.items() if key != "person_framing"}))
    assert main(["search", str(people_dir / "two_men.jpg"), "--index", str(folder), "--model", model]) == 0
    assert "people embedded from one cut a person (written before the cuts were recorded), the queries from cuts at 0.95, 1, 1.05 of the frame; and with faces framed from their keypoints" in capsys.readouterr().err
    assert main(["index", "info", str(folder)]) == 0
    assert "faces framed from their keypoints (made before" in capsys.readouterr().out
    manifest_file.write_text(json.dumps({**manifest, "person_framing": 3}))
    with pytest.raises(PhotoIndexError, match="manifest.json: person_framing is not the name of a framing rule"):
        PhotoIndex.open(folder)
    manifest_file.write_text(json.dumps({**manifest, "person_frame_scales": "wide"}))
    with pytest.raises(PhotoIndexError, match="manifest.json: person_frame_scales is not a list of scales"):
        PhotoIndex.open(folder)


def test_an_add_embeds_new_people_from_the_cuts_the_index_records(pipeline, people_dir, tmp_path):
    folder = tmp_path / "people.sidx"
    build_index(pipeline, [people_dir / "two_men.jpg"], folder, all_people=True)
    # As an index built before the cuts were recorded: one cut a person. Its additions must match it.
    manifest_file = next(folder.glob("v[0-9]*")) / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    del manifest["person_frame_scales"]
    manifest_file.write_text(json.dumps(manifest))
    add_to_index(pipeline, folder, [people_dir / "street_bus.jpg"])
    index = PhotoIndex.open(folder)
    added = [row for row, path in enumerate(index.rows.paths) if path.endswith("street_bus.jpg")]
    one_cut = pipeline.embed_people([people_dir / "street_bus.jpg"], frame_scales=(1.0,)).embeddings
    three_cuts = pipeline.embed_people([people_dir / "street_bus.jpg"]).embeddings
    np.testing.assert_allclose(index.rows.embeddings[added], one_cut, atol=1e-5)
    assert np.abs(one_cut - three_cuts).max() > 1e-3  # the rule matters on these people
    assert index.manifest.person_frame_scales is None


def test_an_add_frames_new_faces_as_the_index_records(pipeline, people_dir, tmp_path):
    folder = tmp_path / "people.sidx"
    build_index(pipeline, [people_dir / "face_a_1.jpg"], folder, all_people=True)
    # As an index built before faces were framed around OpenCV's face box: its additions are framed from
    # their keypoints, as its rows were, not as this version frames them.
    manifest_file = next(folder.glob("v[0-9]*")) / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest_file.write_text(json.dumps({key: value for key, value in manifest.items() if key != "person_framing"}))
    add_to_index(pipeline, folder, [people_dir / "couple.jpg"])
    index = PhotoIndex.open(folder)
    added = [row for row, path in enumerate(index.rows.paths) if path.endswith("couple.jpg")]
    photo = people_dir / "couple.jpg"
    by_keypoints = pipeline.embed_people([photo], detections=[pipeline.processor.detect_people(photo, face_boxes=False)])
    np.testing.assert_allclose(index.rows.embeddings[added], by_keypoints.embeddings, atol=1e-5)
    assert np.abs(by_keypoints.embeddings - pipeline.embed_people([photo]).embeddings).max() > 1e-3  # the rule matters
    assert index.manifest.person_framing is None
    # A framing rule this version does not know cannot be followed: the add is refused, naming the index.
    manifest_file = next(folder.glob("v[0-9]*")) / "manifest.json"
    manifest_file.write_text(json.dumps({**json.loads(manifest_file.read_text()), "person_framing": "eyes-only"}))
    with pytest.raises(PhotoIndexError, match=r"people.sidx: its faces were framed by a rule this version does not know \('eyes-only'\)"):
        add_to_index(pipeline, folder, [people_dir / "face_b_1.jpg"])


def test_an_add_cuts_small_people_only_into_an_index_that_cut_them(pipeline, people_dir, tmp_path):
    folder = tmp_path / "album.sidx"
    photo = people_dir / "street_bus.jpg"  # its person fills little of the photo: cut by this version
    build_index(pipeline, [people_dir / "face_a_1.jpg"], folder)
    manifest_file = next(folder.glob("v[0-9]*")) / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest_file.write_text(json.dumps({key: value for key, value in manifest.items() if key != "small_person_share"}))
    add_to_index(pipeline, folder, [photo])  # built before small people were cut: the photo is added whole
    index = PhotoIndex.open(folder)
    whole, cut = pipeline.embed([str(photo)], frame_small_people=False), pipeline.embed([str(photo)])
    assert cut.framed[0] and not whole.framed[0]
    np.testing.assert_allclose(index.rows.embeddings[-1], whole.embeddings[0], atol=1e-5)
    manifest_file = next(folder.glob("v[0-9]*")) / "manifest.json"
    manifest_file.write_text(json.dumps({**json.loads(manifest_file.read_text()), "small_person_share": 0.3}))
    with pytest.raises(PhotoIndexError, match=r"album.sidx: its people were cut from their photos below 0.3 of the photo, this version cuts below 0.5"):
        add_to_index(pipeline, folder, [people_dir / "face_b_1.jpg"])


def test_another_models_index_is_refused_by_name(pipeline, album, tmp_path):
    folder = tmp_path / "album.sidx"
    build_index(pipeline, sorted(album.iterdir()), folder)
    other = load_pipeline(save_trained_tiny_model(tmp_path / "other_model", seed=1))
    with pytest.raises(PhotoIndexError, match="was embedded by another model"):
        PhotoIndex.open(folder).check_model(other)
    with pytest.raises(PhotoIndexError, match="was embedded by another model"):
        add_to_index(other, folder, sorted(album.iterdir()))


def test_a_second_writer_is_refused_and_a_damaged_index_is_named(pipeline, album, tmp_path):
    folder = tmp_path / "album.sidx"
    build_index(pipeline, sorted(album.iterdir()), folder)
    with writer_lock(folder), pytest.raises(PhotoIndexError, match="another process is writing it"):
        add_to_index(pipeline, folder, sorted(album.iterdir()))
    with pytest.raises(PhotoIndexError, match="already exists"):
        build_index(pipeline, sorted(album.iterdir()), folder)
    version = next(folder.glob("v[0-9]*"))
    rows = version / "rows.parquet"
    rows.write_bytes(rows.read_bytes()[:100])  # truncated
    with pytest.raises(PhotoIndexError, match="rows.parquet: cannot be read"):
        PhotoIndex.open(folder)
    (folder / "CURRENT").unlink()
    with pytest.raises(PhotoIndexError, match="not a photo index"):
        PhotoIndex.open(folder)
    with pytest.raises(PhotoIndexError, match="no such folder"):
        PhotoIndex.open(tmp_path / "nowhere.sidx")


def test_an_ivf_index_needs_enough_rows_to_train(pipeline, album, tmp_path):
    with pytest.raises(PhotoIndexError, match="must be trained on at least 64 rows"):
        build_index(pipeline, sorted(album.iterdir()), tmp_path / "ivf.sidx", index_type="IVF64,Flat")
    with pytest.raises(PhotoIndexError, match="not a faiss factory string"):
        build_index(pipeline, sorted(album.iterdir()), tmp_path / "bad.sidx", index_type="NoSuchIndex")


@pytest.mark.parametrize("moment", ["rows written", "just before CURRENT moves"])
def test_an_add_killed_mid_write_leaves_the_previous_index_searchable(model_dir, pipeline, album, people_dir, tmp_path, moment):
    folder = tmp_path / "album.sidx"
    build_index(pipeline, sorted(album.iterdir()), folder)
    query = people_dir / "face_a_3.jpg"
    before = index_ranking(folder, pipeline, query, 10)
    shutil.copy(people_dir / "face_a_3.jpg", album / "new.jpg")
    # The writer kills itself with SIGKILL at `moment` (no cleanup runs, as with `kill -9`).
    script = textwrap.dedent(f"""
        import os, signal, sys
        from pathlib import Path
        import pyarrow.parquet as pq
        from sapiensid_hf.inference import load_pipeline
        from sapiensid_hf.photo_index import add_to_index

        moment = {moment!r}
        if moment == "rows written":
            original = pq.write_table
            def write_then_die(*args, **kwargs):
                original(*args, **kwargs)
                os.kill(os.getpid(), signal.SIGKILL)
            pq.write_table = write_then_die
        else:
            real_replace = os.replace
            def die_instead(source, target):
                if str(target).endswith("CURRENT"):
                    os.kill(os.getpid(), signal.SIGKILL)
                real_replace(source, target)
            os.replace = die_instead
        pipeline = load_pipeline({str(model_dir)!r})
        add_to_index(pipeline, Path({str(folder)!r}), sorted(Path({str(album)!r}).iterdir()))
    """)
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert completed.returncode == -signal.SIGKILL, completed.stderr[-2000:]
    assert index_ranking(folder, pipeline, query, 10) == before  # the old version, whole
    assert len(list(folder.glob("v[0-9]*"))) == 2  # the dead writer's partial version is left beside it
    report = add_to_index(pipeline, folder, sorted(album.iterdir()))  # the next writer goes on normally
    assert report.added == [str((album / "new.jpg").resolve())] and report.rows == 5
    assert len(list(folder.glob("v[0-9]*"))) == 1


def test_the_index_as_a_datasets_column_with_its_faiss_search(pipeline, album, people_dir, tmp_path):
    from sapiensid_hf.photo_index.datasets_view import add_cosine_faiss_index, index_as_dataset

    folder = tmp_path / "album.sidx"
    build_index(pipeline, sorted(album.iterdir()), folder)
    dataset = index_as_dataset(folder)
    add_cosine_faiss_index(dataset)
    query = pipeline.embed([str(people_dir / "face_a_3.jpg")]).embeddings[0]
    scores, examples = dataset.get_nearest_examples("embedding", query, k=3)
    expected = index_ranking(folder, pipeline, people_dir / "face_a_3.jpg", 3)
    assert examples["path"] == [path for path, _ in expected]
    np.testing.assert_allclose(scores, [score for _, score in expected], atol=1e-5)
    dataset.save_faiss_index("embedding", tmp_path / "embedding.faiss")  # and back
    reloaded = index_as_dataset(folder)
    reloaded.load_faiss_index("embedding", tmp_path / "embedding.faiss")
    assert reloaded.get_nearest_examples("embedding", query, k=3)[1]["path"] == examples["path"]


def test_two_launched_processes_build_and_grow_the_same_index_as_one(model_dir, pipeline, album, people_dir, tmp_path):
    """`accelerate launch --num_processes 2 -m sapiensid_cli index build / add`: each process embeds half the
    photos, the main process writes; the rows equal a one-process build's."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--cpu", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port), "-m", "sapiensid_cli"]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    launched = tmp_path / "launched.sidx"
    built = subprocess.run(launch + ["index", "build", str(album), "--output", str(launched), "--model", str(model_dir)],
                           capture_output=True, text=True, env=environment, timeout=300)  # fmt: skip
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-4000:]
    assert built.stdout.count(f"index {launched}: 4 rows") == 1  # one report, from the writer
    for name in MORE:
        shutil.copy(people_dir / name, album / name)
    grown = subprocess.run(launch + ["index", "add", str(launched), str(album), "--model", str(model_dir)],
                           capture_output=True, text=True, env=environment, timeout=300)  # fmt: skip
    assert grown.returncode == 0, grown.stdout[-2000:] + grown.stderr[-4000:]
    assert "embedded 2 photo(s)" in grown.stdout and "4 photo(s) already indexed and unchanged" in grown.stdout

    build_index(pipeline, sorted(album.iterdir()), tmp_path / "one.sidx")
    two, one = PhotoIndex.open(launched).rows, PhotoIndex.open(tmp_path / "one.sidx").rows
    assert sorted(two.paths) == sorted(one.paths)
    order_two, order_one = np.argsort(two.paths), np.argsort(one.paths)
    np.testing.assert_allclose(two.embeddings[order_two], one.embeddings[order_one], atol=1e-5)
    assert two.content_hashes[order_two[0]] == one.content_hashes[order_one[0]]
