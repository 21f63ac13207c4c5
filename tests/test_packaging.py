"""The wheel `pip install .` builds holds every module of the source tree, and they import from it.

An editable install (`pip install -e .`, what scripts/setup.sh does) finds any folder of the source tree,
so a subpackage missing from pyproject.toml's `packages` goes unnoticed until someone installs the wheel:
`sapiensid_hf.photo_index` was missing until 2026-12-06, and `sapiensid index` failed on import there.
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# Source folder -> where pyproject.toml's package-dir puts it in an installed tree.
INSTALLED_AS = {
    "sapiensid_hf": "sapiensid_hf",
    "sapiensid_cli": "sapiensid_cli",
    "modeling": "sapiensid_hf/modeling",
    "processing": "sapiensid_hf/processing",
    "pretrained": "sapiensid_hf/pretrained",
}


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory) -> Path:
    """The wheel of a copy of the project (building in place would leave build/ in the working tree)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, source / name)
    for folder in INSTALLED_AS:
        shutil.copytree(REPO_ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = out.glob("sapiensid_hf-*.whl")
    return wheel


def source_files() -> dict[str, Path]:
    """Installed path -> source file, for every module and every shipped model file."""
    files = {}
    for folder, installed in INSTALLED_AS.items():
        for path in sorted((REPO_ROOT / folder).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            relative = path.relative_to(REPO_ROOT / folder)
            if folder == "pretrained" and len(relative.parts) == 1:
                continue  # the folder's own __init__.py only; model folders are data
            files[f"{installed}/{relative.as_posix()}"] = path
    return files


def test_the_wheel_holds_every_module_and_shipped_model_file(built_wheel):
    in_wheel = set(zipfile.ZipFile(built_wheel).namelist())
    expected = source_files()
    assert "sapiensid_hf/photo_index/index.py" in expected  # the check reads the tree it guards
    missing = sorted(name for name in expected if name not in in_wheel)
    assert not missing, f"pyproject.toml leaves these out of the wheel: {missing}"


def test_every_module_imports_from_the_unpacked_wheel(built_wheel, tmp_path):
    """Every module of the source tree, imported outside the repository with the unpacked wheel first on
    the path (not the editable install)."""
    site = tmp_path / "site"
    zipfile.ZipFile(built_wheel).extractall(site)
    modules = sorted(
        name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for name in source_files()
        # Model folders' code is data; a `__main__` runs its command when imported.
        if name.endswith(".py") and not name.startswith("sapiensid_hf/pretrained/") and not name.endswith("__main__.py")
    )
    assert "sapiensid_hf.photo_index.index" in modules
    script = (
        "import importlib, sys\n"
        "import sapiensid_hf\n"
        f"assert sapiensid_hf.__file__.startswith({str(site)!r}), sapiensid_hf.__file__\n"
        f"for name in {modules!r}:\n"
        "    module = importlib.import_module(name)\n"
        f"    assert module.__file__.startswith({str(site)!r}), module.__file__\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=environment, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_demo_runs_from_the_wheel(built_wheel, tmp_path):
    """`sapiensid demo` serves a page that lives in the package: it needs no clone of the repository
    (before 2026-12-06 it loaded spaces_app/app.py from beside the package and refused elsewhere)."""
    site = tmp_path / "site"
    zipfile.ZipFile(built_wheel).extractall(site)
    script = (
        "import sapiensid_cli, sapiensid_hf.space.page as page\n"
        f"assert page.__file__.startswith({str(site)!r}), page.__file__\n"
        "sapiensid_cli.main(['demo', '--help'])\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=environment, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--examples-dir" in done.stdout and "--model" in done.stdout


def test_a_plain_install_compares_with_the_shipped_model(built_wheel, tmp_path):
    """The wheel carries the trained default model: `sapiensid compare` run from it loads the folder
    inside the installed package and gives the README's answer (its one-minute example)."""
    from detector_files import require_detector_files

    require_detector_files()
    people = REPO_ROOT.parent / "shared" / "data" / "people"
    if not (people / "face_a_1.jpg").is_file():
        pytest.skip(f"real test photos not found at {people}")
    site = tmp_path / "site"
    zipfile.ZipFile(built_wheel).extractall(site)
    script = (
        "import sys, sapiensid_cli\n"
        f"sys.exit(sapiensid_cli.main(['compare', {str(people / 'face_a_1.jpg')!r}, {str(people / 'face_a_2.jpg')!r}]))\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(site)}
    environment.pop("SAPIENSID_MODEL", None)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=environment, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"the shipped default model, {site / 'sapiensid_hf' / 'pretrained' / 'sapiensid-small'}" in done.stderr
    assert "cosine similarity: 0.4469" in done.stdout and "SAME PERSON" in done.stdout
