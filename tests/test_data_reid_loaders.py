"""Re-id benchmark loaders on tiny fake trees that follow each benchmark's real naming rules."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sapiensid_hf.data import (
    DatasetLayoutError,
    load_ccvid,
    load_ltcc,
    load_market1501,
    load_msmt17,
    load_prcc,
)
from sapiensid_hf.evaluation import evaluate_ranking


def write_image(path: Path, value: int = 128, size=(8, 16)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, 255 - value, 40)).save(path)
    return path


def rows(dataset):
    """Every column except the decoded image, one tuple per row, sorted."""
    columns = [c for c in dataset.column_names if c != "image"]
    return sorted(zip(*(dataset[c] for c in columns), strict=True))


# ---------------------------------------------------------------- Market-1501


@pytest.fixture
def market_root(tmp_path):
    root = tmp_path / "Market-1501-v15.09.15"
    for name in ("0002_c1s1_000451_03.jpg", "0002_c2s1_000551_01.jpg", "0007_c6s3_077419_01.jpg"):
        write_image(root / "bounding_box_train" / name)
    for name in ("0001_c1s1_001051_00.jpg", "0003_c2s1_000301_00.jpg"):
        write_image(root / "query" / name)
    for name in (
        "0001_c2s1_000151_01.jpg",
        "0003_c4s2_005126_04.jpg",
        "0000_c1s1_000000_01.jpg",
        "-1_c1s1_000401_03.jpg",
    ):
        write_image(root / "bounding_box_test" / name)
    (root / "query" / "Thumbs.db").write_bytes(b"not an image")  # the official zip ships these
    return root


def test_market1501_roles_ids_and_junk_rule(market_root, tmp_path):
    dataset = load_market1501(market_root, cache_dir=tmp_path / "cache")
    assert set(dataset.column_names) >= {"image", "path", "pid", "camid", "clothes_id", "role"}
    assert rows(dataset) == [
        ("bounding_box_test/0000_c1s1_000000_01.jpg", 0, 0, -1, "gallery"),  # distractor kept as pid 0
        ("bounding_box_test/0001_c2s1_000151_01.jpg", 1, 1, -1, "gallery"),
        ("bounding_box_test/0003_c4s2_005126_04.jpg", 3, 3, -1, "gallery"),  # -1 junk box dropped
        ("bounding_box_train/0002_c1s1_000451_03.jpg", 2, 0, -1, "train"),
        ("bounding_box_train/0002_c2s1_000551_01.jpg", 2, 1, -1, "train"),
        ("bounding_box_train/0007_c6s3_077419_01.jpg", 7, 5, -1, "train"),
        ("query/0001_c1s1_001051_00.jpg", 1, 0, -1, "query"),
        ("query/0003_c2s1_000301_00.jpg", 3, 1, -1, "query"),
    ]
    image = dataset[0]["image"]
    assert image.size == (8, 16)


def test_market1501_rows_feed_the_ranking_metric(market_root, tmp_path):
    dataset = load_market1501(market_root, splits=("query", "gallery"), cache_dir=tmp_path / "cache")
    query = dataset.filter(lambda role: role == "query", input_columns="role")
    gallery = dataset.filter(lambda role: role == "gallery", input_columns="role")
    # A perfect embedding: distance 0 to the same person, 1 otherwise.
    dist = (np.array(query["pid"])[:, None] != np.array(gallery["pid"])[None, :]).astype(float)
    result = evaluate_ranking(dist, query["pid"], gallery["pid"], query["camid"], gallery["camid"])
    assert (result.mAP, result.num_valid_queries) == (1.0, 2)


@pytest.mark.parametrize(
    ("bad_name", "message"),
    [
        ("img_0001.jpg", "img_0001.jpg: not a Market-1501 style name"),
        ("0001_c9s1_000151_01.jpg", "camera 9 is outside 1..6"),
        ("1600_c1s1_000151_01.jpg", "person id 1600 is outside 0..1501"),
    ],
)
def test_market1501_foreign_file_names_are_named(market_root, tmp_path, bad_name, message):
    write_image(market_root / "query" / bad_name)
    with pytest.raises(DatasetLayoutError, match=message):
        load_market1501(market_root, cache_dir=tmp_path / "cache")


def test_market1501_missing_folders_are_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match="contains none of the expected folders"):
        load_market1501(tmp_path / "empty")
    with pytest.raises(
        DatasetLayoutError, match=r"split 'query': expected the folder .*query, but it does not exist"
    ):
        load_market1501(tmp_path / "empty", splits=("query",))
    with pytest.raises(DatasetLayoutError, match="Market-1501 root"):
        load_market1501(tmp_path / "nowhere")


def test_changed_folder_is_not_served_from_a_stale_cache(market_root, tmp_path):
    first = load_market1501(market_root, splits=("query",), cache_dir=tmp_path / "cache")
    write_image(market_root / "query" / "0005_c3s1_000001_00.jpg")
    second = load_market1501(market_root, splits=("query",), cache_dir=tmp_path / "cache")
    assert (len(first), len(second)) == (2, 3)


# ---------------------------------------------------------------- MSMT17


@pytest.fixture(params=["V1", "V2"])
def msmt_root(request, tmp_path):
    version = request.param
    root = tmp_path / f"MSMT17_{version}"
    train_dir, test_dir = ("train", "test") if version == "V1" else ("mask_train_v2", "mask_test_v2")
    lists = {
        "list_train.txt": [
            (train_dir, "0000/0000_000_01_0303morning_0015_0.jpg", 0),
            (train_dir, "0001/0001_003_07_0303noon_0102_1.jpg", 1),
        ],
        "list_val.txt": [(train_dir, "0001/0001_004_02_0303noon_0201_0.jpg", 1)],
        "list_query.txt": [(test_dir, "0000/0000_000_15_0113morning_0021_0.jpg", 0)],
        "list_gallery.txt": [
            (test_dir, "0000/0000_001_03_0113noon_0420_2.jpg", 0),
            (test_dir, "0002/0002_000_12_0113noon_0008_0.jpg", 2),
        ],
    }
    for list_name, entries in lists.items():
        for folder, relative, _ in entries:
            write_image(root / folder / relative)
        (root / list_name).write_text("".join(f"{relative} {pid}\n" for _, relative, pid in entries))
    return root, version, test_dir


def test_msmt17_list_files_for_both_versions(msmt_root, tmp_path):
    root, version, test_dir = msmt_root
    dataset = load_msmt17(root, splits=("train", "val", "query", "gallery"), cache_dir=tmp_path / "cache")
    got = {(role, pid, camid) for _, pid, camid, _, role in rows(dataset)}
    assert got == {
        ("train", 0, 0),
        ("train", 1, 6),
        ("val", 1, 1),
        ("query", 0, 14),
        ("gallery", 0, 2),
        ("gallery", 2, 11),
    }
    query_path = dataset.filter(lambda r: r == "query", input_columns="role")["path"]
    assert query_path == [f"{test_dir}/0000/0000_000_15_0113morning_0021_0.jpg"]
    assert load_msmt17(root, splits=("query",), version=version, cache_dir=tmp_path / "cache").num_rows == 1


def test_msmt17_bad_lines_and_missing_images_are_named(msmt_root, tmp_path):
    root, _, _ = msmt_root
    (root / "list_query.txt").write_text("0000/0000_000_15_0113morning_0021_0.jpg\n")
    with pytest.raises(DatasetLayoutError, match=r"list_query.txt:1: expected '<image path> <pid>'"):
        load_msmt17(root, splits=("query",), cache_dir=tmp_path / "cache")
    (root / "list_query.txt").write_text("0009/0009_000_15_0113morning_0021_0.jpg 9\n")
    with pytest.raises(DatasetLayoutError, match=r"list_query.txt:1: image .*0009_000_15.* does not exist"):
        load_msmt17(root, splits=("query",), cache_dir=tmp_path / "cache")


def test_msmt17_unknown_layout(tmp_path):
    (tmp_path / "msmt").mkdir()
    with pytest.raises(DatasetLayoutError, match="neither V1 folders"):
        load_msmt17(tmp_path / "msmt")


# ---------------------------------------------------------------- LTCC


def test_ltcc_clothes_ids_follow_cal(tmp_path):
    root = tmp_path / "LTCC_ReID"
    for name in ("094_1_c9_015848.png", "094_2_c2_000111.png"):
        write_image(root / "train" / name)
    for name in ("001_1_c11_015848.png", "002_1_c1_000002.png"):
        write_image(root / "query" / name)
    for name in ("001_2_c3_000111.png", "001_1_c4_000020.png", "002_1_c5_000032.png"):
        write_image(root / "test" / name)
    dataset = load_ltcc(root, cache_dir=tmp_path / "cache")
    # Test clothes keys over query + gallery, sorted: 001_1 -> 0, 001_2 -> 1, 002_1 -> 2; train on its own.
    assert rows(dataset) == [
        ("query/001_1_c11_015848.png", 1, 10, 0, "query"),
        ("query/002_1_c1_000002.png", 2, 0, 2, "query"),
        ("test/001_1_c4_000020.png", 1, 3, 0, "gallery"),
        ("test/001_2_c3_000111.png", 1, 2, 1, "gallery"),
        ("test/002_1_c5_000032.png", 2, 4, 2, "gallery"),
        ("train/094_1_c9_015848.png", 94, 8, 0, "train"),
        ("train/094_2_c2_000111.png", 94, 1, 1, "train"),
    ]
    write_image(root / "query" / "person1.png")
    with pytest.raises(DatasetLayoutError, match="person1.png: not an LTCC name"):
        load_ltcc(root, cache_dir=tmp_path / "cache")


# ---------------------------------------------------------------- PRCC


@pytest.fixture
def prcc_root(tmp_path):
    root = tmp_path / "prcc"
    rgb = root / "rgb"
    for cam, count in (("A", 2), ("B", 1), ("C", 1)):
        for pid in ("001", "005"):
            for i in range(count):
                write_image(rgb / "test" / cam / pid / f"cropped_rgb{i:03d}.jpg")
    for name in ("A_cropped_rgb001.jpg", "B_cropped_rgb002.jpg", "C_cropped_rgb011.jpg"):
        write_image(rgb / "train" / "003" / name)
    write_image(rgb / "train" / "004" / "C_cropped_rgb001.jpg")
    return root


def test_prcc_test_roles_cameras_and_clothes(prcc_root, tmp_path):
    dataset = load_prcc(prcc_root, cache_dir=tmp_path / "cache")
    got = sorted({(role, pid, camid, clothes) for _, pid, camid, clothes, role in rows(dataset)})
    # pid ranks from test/A: 001 -> 0, 005 -> 1; clothes 2*rank for A/B, 2*rank+1 for C.
    assert got == [
        ("gallery", 1, 0, 0),
        ("gallery", 5, 0, 2),
        ("query_diff", 1, 2, 1),
        ("query_diff", 5, 2, 3),
        ("query_same", 1, 1, 0),
        ("query_same", 5, 1, 2),
    ]
    assert dataset.filter(lambda r: r == "gallery", input_columns="role").num_rows == 4
    assert dataset[0]["path"].startswith("test/")
    # the rgb folder itself is accepted as root
    assert load_prcc(prcc_root / "rgb", cache_dir=tmp_path / "cache").num_rows == dataset.num_rows


def test_prcc_train_outfits(prcc_root, tmp_path):
    dataset = load_prcc(prcc_root, splits=("train",), cache_dir=tmp_path / "cache")
    # Outfits: "003" (cameras A, B), "003C", "004C" -> 0, 1, 2.
    assert [(pid, camid, clothes) for _, pid, camid, clothes, _ in rows(dataset)] == [
        (3, 0, 0),
        (3, 1, 0),
        (3, 2, 1),
        (4, 2, 2),
    ]


def test_prcc_malformed_trees_are_named(prcc_root, tmp_path):
    write_image(prcc_root / "rgb" / "test" / "C" / "009" / "x.jpg")
    with pytest.raises(DatasetLayoutError, match=r"test/C/009 has no gallery counterpart"):
        load_prcc(prcc_root, cache_dir=tmp_path / "cache")
    write_image(prcc_root / "rgb" / "train" / "003" / "D_cropped.jpg")
    with pytest.raises(DatasetLayoutError, match="should start with its camera letter"):
        load_prcc(prcc_root, splits=("train",), cache_dir=tmp_path / "cache")
    with pytest.raises(DatasetLayoutError, match=r"PRCC test split: expected the folder"):
        load_prcc(tmp_path, cache_dir=tmp_path / "cache")


# ---------------------------------------------------------------- CCVID


def test_ccvid_frames_with_tracklets_cameras_and_clothes(tmp_path):
    root = tmp_path / "CCVID"
    lists = {
        "train.txt": ["session1/010_01\t010\tu1_l1_s1_c1_b1"],
        "query.txt": ["session1/001_02\t001\tu1_l1_s1_c1_b1", "session3/001_05\t001\tu2_l2_s1_c1_b1"],
        "gallery.txt": ["session2/001_03\t001\tu1_l1_s1_c1_b1", "session2/002_04\t002\tu1_l1_s1_c1_b1"],
    }
    for name, lines in lists.items():
        (root).mkdir(parents=True, exist_ok=True)
        (root / name).write_text("\n".join(lines) + "\n")
        for line in lines:
            for frame in range(2):
                write_image(root / line.split()[0] / f"{frame:05d}.jpg")
    dataset = load_ccvid(root, splits=("train", "query", "gallery"), cache_dir=tmp_path / "cache")
    assert "tracklet" in dataset.column_names
    got = sorted(
        {
            (r["role"], r["tracklet"], r["pid"], r["camid"], r["clothes_id"])
            for r in dataset.remove_columns("image")
        }
    )
    # clothes keys over query + gallery sorted: 001_u1.. -> 0, 001_u2.. -> 1, 002_u1.. -> 2; session3 cams + 12
    assert got == [
        ("gallery", "session2/001_03", 1, 3, 0),
        ("gallery", "session2/002_04", 2, 4, 2),
        ("query", "session1/001_02", 1, 2, 0),
        ("query", "session3/001_05", 1, 17, 1),
        ("train", "session1/010_01", 10, 1, 0),
    ]
    assert dataset.num_rows == 10
    (root / "query.txt").write_text("session1/001_02 001\n")
    with pytest.raises(
        DatasetLayoutError, match=r"query.txt:1: expected '<session>/<pid>_<cam> <pid> <clothes label>'"
    ):
        load_ccvid(root, cache_dir=tmp_path / "cache")
    (root / "query.txt").write_text("session1/001_09 001 u1\n")
    with pytest.raises(DatasetLayoutError, match=r"CCVID tracklet listed in query.txt: expected the folder"):
        load_ccvid(root, cache_dir=tmp_path / "cache")
