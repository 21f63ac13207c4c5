"""Miniature copies of the shared data layouts, made in a test from the real photos (no tests here)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

PHOTOS = ("face_a_1.jpg", "face_a_2.jpg", "face_b_1.jpg", "two_men.jpg", "couple.jpg", "street_bus.jpg")


def identities_layout(people_dir: Path, root: Path) -> Path:
    """A miniature `../shared/data/identities` (the public-dev layout) over crops of the real photos:
    CUHK03-val 3 people x 2 cameras, Con-ReID query / gallery, LFW val with a 5 + 5 pairs file."""
    photos = [Image.open(people_dir / name).convert("RGB") for name in PHOTOS]

    def save(relative: str, photo: int, shift: int) -> None:
        image = photos[photo]
        width, height = image.size
        box = (shift * width // 20, 0, width - (3 - shift) * width // 20, height)
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        image.crop(box).save(root / relative)

    lines = ["path,identity,camera,source,split"]
    for person in range(3):
        for shot in (0, 1, 5, 6):
            name = f"cuhk03/val/{person:04d}_{shot:02d}.jpg"
            save(name, person + 3, shot % 4)
            lines.append(f"{name},cuhk03-val-{person:04d},{0 if shot < 5 else 1},cuhk03,val")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    for name, photo, shift in (("query/0001_c1s1_000001.jpg", 3, 0), ("query/0002_c1s1_000001.jpg", 4, 0),
                               ("bounding_box_test/0001_c2s1_000002.jpg", 3, 2),
                               ("bounding_box_test/0002_c3s1_000002.jpg", 4, 2),
                               ("bounding_box_test/0003_c2s1_000001.jpg", 5, 1)):  # fmt: skip
        save(f"conreid/{name}", photo, shift)
    for name, photo, count in (("Ann", 0, 3), ("Bob", 2, 3), ("Cy", 3, 2), ("Dee", 4, 2)):
        for number in range(1, count + 1):
            save(f"lfw/val/{name}/{name}_{number:04d}.jpg", number - 1 if name == "Ann" else photo, number)
    pairs = ["1\t5", "Ann 1 2", "Ann 1 3", "Bob 1 2", "Bob 2 3", "Cy 1 2",
             "Ann 1 Bob 1", "Ann 2 Cy 1", "Bob 3 Dee 1", "Cy 2 Dee 2", "Dee 1 Ann 3"]  # fmt: skip
    (root / "lfw" / "pairs_val.txt").write_text("\n".join(pairs) + "\n")
    return root
