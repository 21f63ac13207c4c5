"""The Gradio Space in a real browser: Debian's chromium, driven by Playwright, compares two real photos."""

import importlib.util
import socket
import sys
from pathlib import Path

import pytest

from sapiensid_hf.inference import UNTRAINED_WARNING, load_pipeline
from sapiensid_hf.processing.detector_assets import detector_dir, missing_or_damaged

REPO_ROOT = Path(__file__).resolve().parents[1]
APP_PATH = REPO_ROOT / "spaces_app" / "app.py"
PEOPLE_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "people"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RESULT_TIMEOUT_MS = 150_000  # generous: the CI machine may be busy with other tests

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is absent (apt-get install chromium)"),
    # Raised inside gradio's queue by pandas 3; nothing this test controls.
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]


def load_app_module():
    spec = importlib.util.spec_from_file_location("sapiensid_space_app_browser", APP_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def space():
    missing = missing_or_damaged(detector_dir())
    if missing:
        pytest.skip(
            f"keypoint detector files missing from {detector_dir()}; run `sapiensid download-detector` first"
        )
    if not PEOPLE_DIR.is_dir():
        pytest.skip(f"real test photos not found at {PEOPLE_DIR}")
    app = load_app_module()
    # No model given: the untrained tiny model, so the page must carry the warning banner.
    demo = app.build_demo(load_pipeline(None))
    port = free_port()
    app.launch_demo(demo, host="127.0.0.1", port=port, block=False)
    try:
        yield f"http://127.0.0.1:{port}/", app
    finally:
        demo.close()


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 1400})
        finally:
            browser.close()


def wait_for_verdict(page, text: str, tmp_path: Path) -> None:
    """Wait until the verdict contains `text`; on timeout, fail with what the page shows instead."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    try:
        page.wait_for_function(
            "text => (document.querySelector('#verdict')?.innerText || '').includes(text)",
            arg=text,
            timeout=RESULT_TIMEOUT_MS,
        )
    except PlaywrightTimeoutError:
        page.screenshot(path=str(tmp_path / "timeout.png"), full_page=True)
        pytest.fail(
            f"no verdict containing {text!r} after {RESULT_TIMEOUT_MS / 1000:.0f} s; verdict "
            f"{page.locator('#verdict').inner_text()!r}, messages "
            f"{page.locator('#compare-status textarea').input_value()!r}; screenshot in {tmp_path}"
        )


def test_compare_two_photos_in_the_browser(space, page, tmp_path):
    url, app = space
    page.goto(url)
    page.wait_for_selector("#compare-button")
    banner = page.locator("#untrained-warning")
    assert banner.is_visible() and UNTRAINED_WARNING.split(":")[0] in banner.inner_text()

    page.locator("#image-a input[type=file]").set_input_files(str(PEOPLE_DIR / "face_a_2.jpg"))
    page.locator("#image-b input[type=file]").set_input_files(str(PEOPLE_DIR / "face_a_3.jpg"))
    page.locator("#image-a img").first.wait_for()  # both previews shown: the uploads are done
    page.locator("#image-b img").first.wait_for()
    page.click("#compare-button")
    # The verdict is written together with the score, so once it is there the score is final.
    wait_for_verdict(page, "threshold", tmp_path)

    score = float(page.locator("#score input").input_value())
    assert -1.0 <= score <= 1.0
    verdict = page.locator("#verdict").inner_text()
    assert ("Same person" if score >= app.DEFAULT_THRESHOLD else "Different people") in verdict
    assert "Image A: face found" in page.locator("#compare-status textarea").input_value()
    assert (
        page.locator("#overlay-a img").first.is_visible()
        and page.locator("#overlay-b img").first.is_visible()
    )

    # Moving the threshold to 1 re-decides without re-running the model: two different photos score below 1.
    threshold_box = page.locator("#threshold input[type=number]")
    threshold_box.fill("1")
    threshold_box.press("Enter")
    wait_for_verdict(page, "Different people", tmp_path)
    assert float(page.locator("#score input").input_value()) == score

    screenshot = tmp_path / "space_compare.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
