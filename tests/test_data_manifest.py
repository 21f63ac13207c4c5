"""Manifest (CSV / Parquet) loader and LFW pairs.txt reader: real layouts and bad input."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SHARED_DATA
from PIL import Image

from sapiensid_hf.data import (
    DatasetLayoutError,
    load_lfw_pairs,
    load_manifest,
    load_market1501,
    read_lfw_pairs,
)

IDENTITIES = SHARED_DATA / "identities"


def _images(folder, names):
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 16), (10, 20, 30)).save(path)


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_manifest_numbers_identities_in_sorted_order_and_keeps_the_strings(tmp_path):
    _images(tmp_path, ["a/1.jpg", "a/2.jpg", "b/1.jpg", "c/1.jpg"])
    manifest = _write(
        tmp_path / "m.csv",
        "path,identity,camera,clothes,split\n"
        "b/1.jpg,zoe,1,red,train\na/1.jpg,adam,0,blue,train\na/2.jpg,adam,,red,query\nc/1.jpg,mia,2,,gallery\n",
    )
    data = load_manifest(manifest)
    assert data["identity"] == ["zoe", "adam", "adam", "mia"]
    assert data["pid"] == [2, 0, 0, 1]  # adam < mia < zoe
    assert data["camid"] == [1, 0, -1, 2]
    assert data["role"] == ["train", "train", "query", "gallery"]
    # Global outfit numbers in sorted (identity, clothes) order: (adam, blue) 0, (adam, red) 1, (zoe, red) 2.
    assert data["clothes_id"] == [2, 0, 1, -1]
    assert data["path"][0] == "b/1.jpg" and data["image"][0].size == (8, 16)
    # A split selection keeps the pids of the whole manifest.
    query = load_manifest(manifest, splits=["query", "gallery"])
    assert query["pid"] == [0, 1] and query["identity"] == ["adam", "mia"]


def test_manifest_parquet_with_role_column_and_other_root(tmp_path):
    _images(tmp_path / "photos", ["x.png", "y.png"])
    table = pa.table({"path": ["x.png", "y.png"], "identity": ["p1", "p2"], "role": ["train", "train"]})
    pq.write_table(table, tmp_path / "m.parquet")
    data = load_manifest(tmp_path / "m.parquet", root=tmp_path / "photos")
    assert data["pid"] == [0, 1] and data["role"] == ["train", "train"] and data["camid"] == [-1, -1]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("a.jpg,,train\n", r"line 2: empty identity"),
        ("missing.jpg,p,train\n", r"line 2: the image .*missing\.jpg does not exist"),
        ("a.jpg,p,train\na.jpg,q,train\n", r"line 3: a\.jpg is listed twice \(also on line 2\)"),
        ("a.jpg,p,train,extra\n", r"more fields than the header"),
    ],
)
def test_manifest_bad_rows_name_the_line_and_file(tmp_path, rows, message):
    _images(tmp_path, ["a.jpg"])
    manifest = _write(tmp_path / "m.csv", "path,identity,split\n" + rows)
    with pytest.raises(DatasetLayoutError, match=message):
        load_manifest(manifest)


@pytest.mark.parametrize(
    ("header", "row", "message"),
    [
        ("path,identity,colour", "a.jpg,p,red", r"unknown column\(s\) colour"),
        ("path,camera", "a.jpg,0", r"missing column\(s\) identity"),
        ("path,identity,split,role", "a.jpg,p,train,train", r"not both"),
        ("path,identity,camera", "a.jpg,p,left", r"line 2 .*camera 'left' is not an integer"),
    ],
)
def test_manifest_bad_columns(tmp_path, header, row, message):
    _images(tmp_path, ["a.jpg"])
    with pytest.raises(DatasetLayoutError, match=message):
        load_manifest(_write(tmp_path / "m.csv", f"{header}\n{row}\n"))


def test_manifest_refuses_unknown_split_empty_file_and_other_formats(tmp_path):
    _images(tmp_path, ["a.jpg"])
    manifest = _write(tmp_path / "m.csv", "path,identity,split\na.jpg,p,train\n")
    with pytest.raises(DatasetLayoutError, match=r"split\(s\) val not in the manifest \(it has: train\)"):
        load_manifest(manifest, splits=["val"])
    with pytest.raises(DatasetLayoutError, match="has no rows"):
        load_manifest(_write(tmp_path / "empty.csv", "path,identity\n"))
    with pytest.raises(DatasetLayoutError, match="must be .csv, .tsv or .parquet"):
        load_manifest(_write(tmp_path / "m.json", "[]"))
    with pytest.raises(DatasetLayoutError, match="not a readable Parquet"):
        load_manifest(_write(tmp_path / "bad.parquet", "not parquet"))
    with pytest.raises(DatasetLayoutError, match="expected the file"):
        load_manifest(tmp_path / "nope.csv")


PAIRS_VIEW2 = "2\t2\nAnn\t1\t2\nBob\t1\t3\nAnn\t1\tBob\t2\nCy\t1\tAnn\t2\nCy\t1\t2\nAnn\t2\t3\nBob 1 Cy 2\nAnn 3 Cy 1\n"


def test_read_lfw_pairs_view2_folds_same_and_different(tmp_path):
    pairs = read_lfw_pairs(_write(tmp_path / "pairs.txt", PAIRS_VIEW2))
    assert [pair.fold for pair in pairs] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert [pair.same for pair in pairs] == [True, True, False, False] * 2
    assert pairs[2].relative_paths() == ("Ann/Ann_0001.jpg", "Bob/Bob_0002.jpg")
    assert pairs[6].relative_paths() == ("Bob/Bob_0001.jpg", "Cy/Cy_0002.jpg")  # space-separated line
    view1 = read_lfw_pairs(_write(tmp_path / "dev.txt", "1\nAnn\t1\t2\nAnn\t1\tBob\t1\n"))
    assert [(pair.fold, pair.same) for pair in view1] == [(0, True), (0, False)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("two\t300\n", "line 1: header"),
        ("1\t2\nAnn\t1\t2\n", r"promises 1 fold\(s\) x \(2 x 2\) = 4 pairs, the file has 1"),
        ("1\nAnn\t1\tBob\t2\nAnn\t1\tBob\t2\n", r"line 2: expected a same-person \(name i j\) line, got 4 fields"),
        ("1\nAnn\t1\t2\nAnn\t1\t2\n", r"line 3: expected a different-person"),
        ("1\nAnn\tone\t2\nAnn\t1\tBob\t2\n", "line 2: image numbers must be integers"),
        ("1\nAnn\t0\t2\nAnn\t1\tBob\t2\n", "line 2: image numbers start at 1"),
    ],
)
def test_read_lfw_pairs_refuses_malformed_files(tmp_path, text, message):
    with pytest.raises(DatasetLayoutError, match=message):
        read_lfw_pairs(_write(tmp_path / "pairs.txt", text))


def test_load_lfw_pairs_rows_in_pair_order_and_missing_image(tmp_path):
    _images(tmp_path, ["Ann/Ann_0001.jpg", "Ann/Ann_0002.jpg", "Bob/Bob_0001.jpg"])
    _write(tmp_path / "pairs.txt", "1\nAnn\t1\t2\nAnn\t2\tBob\t1\n")
    data = load_lfw_pairs(tmp_path, "pairs.txt")
    assert data["path"] == ["Ann/Ann_0001.jpg", "Ann/Ann_0002.jpg", "Ann/Ann_0002.jpg", "Bob/Bob_0001.jpg"]
    assert data["pair_index"] == [0, 0, 1, 1] and data["is_same"] == [True, True, False, False]
    assert data["pid"] == [0, 0, 0, 1] and data["fold"] == [0, 0, 0, 0]
    _write(tmp_path / "pairs.txt", "1\nAnn\t1\t3\nAnn\t2\tBob\t1\n")
    with pytest.raises(DatasetLayoutError, match=r"Ann_0003\.jpg does not exist"):
        load_lfw_pairs(tmp_path, "pairs.txt")


@pytest.fixture(scope="module")
def identities():
    if not (IDENTITIES / "manifest.csv").is_file():
        pytest.skip(f"identity photos not found at {IDENTITIES}")
    return IDENTITIES


def test_real_manifest_train_split_and_its_duplicate_gallery_rows(identities):
    train = load_manifest(identities / "manifest.csv", splits=["train"])
    assert len(train) == 14592 and len(set(train["pid"])) == 1792
    assert {source: train["source"].count(source) for source in ("cuhk03", "conreid", "lfw")} == {
        "cuhk03": 7239, "conreid": 2371, "lfw": 4982,
    }  # fmt: skip
    # The shared manifest lists 317 Con-ReID gallery files twice: refused, never silently double-counted.
    with pytest.raises(DatasetLayoutError, match=r"conreid/bounding_box_test/.* is listed twice"):
        load_manifest(identities / "manifest.csv", splits=["gallery"])


def test_real_conreid_folders_load_with_the_market1501_loader(identities):
    data = load_market1501(identities / "conreid")
    roles = data["role"]
    assert roles.count("train") == 2371 and roles.count("query") == 212
    assert roles.count("gallery") == len(list((identities / "conreid" / "bounding_box_test").glob("*.jpg")))
    suffixed = [path for path in data["path"] if path.endswith("_1.jpg")]
    assert suffixed, "Con-ReID's '_1' file names must be read"
    assert set(data["camid"]) <= set(range(6))


def test_real_lfw_fold7_pairs(identities):
    pairs = read_lfw_pairs(identities / "lfw" / "pairs_val.txt")
    assert len(pairs) == 600 and sum(pair.same for pair in pairs) == 300
    data = load_lfw_pairs(identities / "lfw" / "val", identities / "lfw" / "pairs_val.txt")
    assert len(data) == 1200
