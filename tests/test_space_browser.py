"""The Gradio Space in a real browser: Debian's chromium, driven by Playwright, compares two real photos."""

from pathlib import Path

import pytest
from detector_files import require_detector_files
from space_server import GRADIO_QUEUE_WARNING_FILTERS, served

from sapiensid_hf.inference import UNTRAINED_WARNING, load_pipeline
from sapiensid_hf.space.messages import DEFAULT_THRESHOLD

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
    *GRADIO_QUEUE_WARNING_FILTERS,
]


@pytest.fixture(scope="module")
def space():
    require_detector_files()
    if not PEOPLE_DIR.is_dir():
        pytest.skip(f"real test photos not found at {PEOPLE_DIR}")
    # The untrained tiny model on purpose, so the page must carry the warning banner.
    with served(load_pipeline("untrained")) as url:
        yield url


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
    url = space
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
    threshold = float(page.locator("#threshold input[type=number]").input_value())  # set by the comparison
    assert threshold == DEFAULT_THRESHOLD and "untuned default" in verdict  # the test model is uncalibrated
    assert ("Same person" if score >= threshold else "Different people") in verdict
    assert "Image A: face found" in page.locator("#compare-status textarea").input_value()
    # The overlays arrive in the same update; the browser may paint them a moment after the text.
    for overlay in ("#overlay-a img", "#overlay-b img"):
        page.locator(overlay).first.wait_for(state="visible", timeout=30_000)

    # Moving the threshold to 1 re-decides without re-running the model: two different photos score below 1.
    threshold_box = page.locator("#threshold input[type=number]")
    threshold_box.fill("1")
    threshold_box.press("Enter")
    wait_for_verdict(page, "Different people", tmp_path)
    assert "set on the slider" in page.locator("#verdict").inner_text()
    assert float(page.locator("#score input").input_value()) == score

    screenshot = tmp_path / "space_compare.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000


def test_compare_photos_with_several_people_in_the_browser(space, page, tmp_path):
    url = space
    page.goto(url)
    page.wait_for_selector("#compare-button")
    page.locator("#image-a input[type=file]").set_input_files(str(PEOPLE_DIR / "two_men.jpg"))
    page.locator("#image-b input[type=file]").set_input_files(str(PEOPLE_DIR / "street_bus.jpg"))
    page.locator("#image-a img").first.wait_for()
    page.locator("#image-b img").first.wait_for()
    page.click("#compare-button")
    wait_for_verdict(page, "threshold", tmp_path)
    status = page.locator("#compare-status textarea").input_value()
    assert "Image A: 2 people found (numbered on the picture)" in status
    assert "Compared the best-matching pair" in status
    for overlay in ("#overlay-a img", "#overlay-b img"):
        page.locator(overlay).first.wait_for(state="visible", timeout=30_000)

    # the visitor types person 1 under A: that person is compared with their best match in B
    person_a = page.locator("#person-a input")
    person_a.fill("1")
    person_a.press("Tab")
    page.click("#compare-button")
    page.wait_for_function(
        "() => (document.querySelector('#compare-status textarea')?.value || '').includes('the people chosen')",
        timeout=RESULT_TIMEOUT_MS,
    )
    assert "person 1 of A with person" in page.locator("#compare-status textarea").input_value()
    page.screenshot(path=str(tmp_path / "space_people.png"), full_page=True)
