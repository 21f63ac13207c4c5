"""The Space's page: the Compare, Search and About tabs wired to `DemoHandlers`, and its server."""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr

from ..inference import SapiensIDPipeline
from .gallery_search import DEFAULT_TOP_K, MAX_GALLERY_IMAGES, MAX_TOP_K
from .handlers import DemoHandlers
from .messages import DEFAULT_THRESHOLD
from .page_text import ABOUT_MARKDOWN, OVERLAY_LEGEND, THRESHOLD_NOTE, untrained_banner

# The real photos shipped beside the repository (../shared/data/people) of an editable install; absent
# where the package is installed from a wheel and on a deployed Space: the page then shows no examples.
DEFAULT_EXAMPLES_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "people"

MAX_UPLOAD_SIZE = "20mb"
MODEL_CONCURRENCY_ID = "sapiensid-model"
# Uploaded files and rendered overlays are deleted from Gradio's temporary folder: checked every 5
# minutes, removed once older than 15 minutes (and all of them when the server restarts).
DELETE_CACHE = (300, 900)

COMPARE_EXAMPLES = (
    ("face_a_1.jpg", "face_a_2.jpg", "same person, two close-ups"),
    ("face_a_2.jpg", "face_a_3.jpg", "same person, face vs upper body"),
    ("face_a_1.jpg", "face_b_1.jpg", "different people"),
    ("two_men.jpg", "street_bus.jpg", "upper bodies vs full bodies"),
)
SEARCH_EXAMPLE_QUERY = "face_a_1.jpg"


def example_files(examples_dir: Path | None) -> dict[str, str]:
    """Example photo name -> path, for the photos present in `examples_dir`."""
    if examples_dir is None or not Path(examples_dir).is_dir():
        return {}
    return {path.name: str(path) for path in sorted(Path(examples_dir).glob("*.jpg"))}


def image_input(label: str, elem_id: str) -> gr.Image:
    """An image box that hands the handlers the raw upload (decoded by `read_upload`)."""
    return gr.Image(
        label=label, sources=["upload", "webcam", "clipboard"], type="filepath", elem_id=elem_id, height=320
    )


def build_compare_tab(handlers: DemoHandlers, examples: dict[str, str]) -> None:
    with gr.Row():
        image_a = image_input("Image A", "image-a")
        image_b = image_input("Image B", "image-b")
    pairs = [
        (first, second, label)
        for first, second, label in COMPARE_EXAMPLES
        if {first, second} <= set(examples)
    ]
    if pairs:
        gr.Examples(
            examples=[[examples[first], examples[second]] for first, second, _ in pairs],
            inputs=[image_a, image_b],
            example_labels=[label for _, _, label in pairs],
            label="Example pairs (real photos)",
        )
    with gr.Row():
        person_a = gr.Number(
            value=-1, precision=0, minimum=-1, label="Person in A (number on the picture; -1: best match)",
            elem_id="person-a",
        )
        person_b = gr.Number(
            value=-1, precision=0, minimum=-1, label="Person in B (number on the picture; -1: best match)",
            elem_id="person-b",
        )
    compare_button = gr.Button("Compare", variant="primary", elem_id="compare-button")
    with gr.Row():
        overlay_a = gr.Image(
            label="What the model reads: A", interactive=False, elem_id="overlay-a", height=360
        )
        overlay_b = gr.Image(
            label="What the model reads: B", interactive=False, elem_id="overlay-b", height=360
        )
    gr.Markdown(OVERLAY_LEGEND)
    with gr.Row():
        score = gr.Number(
            value=None, label="Cosine similarity (-1 to 1)", precision=4, interactive=False, elem_id="score"
        )
        threshold = gr.Slider(
            -1.0, 1.0, value=DEFAULT_THRESHOLD, step=0.0001, label="Threshold", elem_id="threshold"
        )
    verdict = gr.Markdown(elem_id="verdict")
    status = gr.Textbox(label="Messages", interactive=False, lines=3, elem_id="compare-status")
    gr.Markdown(THRESHOLD_NOTE)

    chosen_threshold = gr.State(None)  # the calibrated threshold of the last comparison and its origin
    compare_button.click(
        handlers.compare,
        inputs=[image_a, image_b, person_a, person_b],
        outputs=[overlay_a, overlay_b, score, verdict, status, threshold, chosen_threshold],
        api_name="compare",
        preprocess=False,  # uploads are decoded by `read_upload`, which explains what is wrong with them
        concurrency_id=MODEL_CONCURRENCY_ID,
    )
    threshold.change(
        handlers.rethreshold, inputs=[score, threshold, chosen_threshold], outputs=verdict, api_visibility="private"
    )


def build_search_tab(handlers: DemoHandlers, examples: dict[str, str]) -> None:
    gr.Markdown(
        "Build a gallery from your pictures, then query it with one picture: a face close-up can find the "
        "same person in a full-body photo and the other way round."
    )
    with gr.Row():
        gallery_files = gr.File(
            label=f"Gallery pictures (up to {MAX_GALLERY_IMAGES}; select several files or a whole folder's contents)",
            file_count="multiple",
            file_types=["image"],
            type="filepath",
            elem_id="gallery-files",
        )
        query = image_input("Query picture", "query-image")
    if SEARCH_EXAMPLE_QUERY in examples:
        gr.Examples(
            examples=[[list(examples.values()), examples[SEARCH_EXAMPLE_QUERY]]],
            inputs=[gallery_files, query],
            example_labels=["all example photos, queried with a face close-up"],
            label="Example gallery",
        )
    top_k = gr.Slider(1, MAX_TOP_K, value=DEFAULT_TOP_K, step=1, label="Top k", elem_id="top-k")
    with gr.Row():
        every_person = gr.Checkbox(
            value=False, label="Search every person in the gallery pictures (group photos, street scenes)",
            elem_id="every-person",
        )
        query_person = gr.Number(
            value=0, precision=0, minimum=0, label="Query person (number on the query picture; 0 = most prominent)",
            elem_id="query-person",
        )
    search_button = gr.Button("Search", variant="primary", elem_id="search-button")
    results = gr.Gallery(label="Best matches", columns=5, height=360, elem_id="search-results")
    with gr.Row():
        table = gr.Dataframe(
            headers=["rank", "picture", "cosine", "person found", "face found", "false-match rate"],
            datatype=["number", "str", "number", "bool", "bool", "str"],
            interactive=False,
            label="Ranking",
            elem_id="search-table",
        )
        query_overlay = gr.Image(label="What the model reads: query", interactive=False, height=300)
    status = gr.Textbox(label="Messages", interactive=False, lines=3, elem_id="search-status")
    cache = gr.State({})
    search_button.click(
        handlers.search,
        inputs=[gallery_files, query, top_k, cache, every_person, query_person],
        outputs=[results, table, query_overlay, status, cache],
        api_name="search",
        preprocess=False,  # see the Compare tab
        concurrency_id=MODEL_CONCURRENCY_ID,
    )


def build_demo(
    pipeline: SapiensIDPipeline,
    examples_dir: str | os.PathLike | None = DEFAULT_EXAMPLES_DIR,
    concurrency_limit: int = 1,
    max_queue_size: int = 32,
) -> gr.Blocks:
    """The Space's page for `pipeline`. Model calls share one queue slot group of `concurrency_limit`."""
    # Gradio reads this at every report it would send: no telemetry, no version check over the internet.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    handlers = DemoHandlers(pipeline)
    examples = example_files(Path(examples_dir) if examples_dir is not None else None)
    with gr.Blocks(
        title="SapiensID: one model for faces and bodies", analytics_enabled=False, delete_cache=DELETE_CACHE
    ) as demo:
        gr.Markdown(
            "# SapiensID: one model for faces, upper bodies and full bodies\n"
            "Compare two pictures of people, or search a gallery, with the same model: no face alignment, "
            "no separate body model."
        )
        gr.Markdown(f"Model: {pipeline.description}", elem_id="model-description")
        if not pipeline.trained:
            gr.HTML(untrained_banner())
        with gr.Tabs():
            with gr.Tab("Compare", id="compare"):
                build_compare_tab(handlers, examples)
            with gr.Tab("Search", id="search"):
                build_search_tab(handlers, examples)
            with gr.Tab("About", id="about"):
                gr.Markdown(ABOUT_MARKDOWN)
    demo.queue(default_concurrency_limit=concurrency_limit, max_size=max_queue_size)
    return demo


def launch_demo(
    demo: gr.Blocks,
    host: str = "127.0.0.1",
    port: int | None = None,
    share: bool = False,
    max_file_size: str = MAX_UPLOAD_SIZE,
    block: bool = True,
) -> None:
    """Serve `demo`; with `block=False` return once the server is up (tests)."""
    demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=max_file_size,
        prevent_thread_lock=not block,
        show_error=True,
        quiet=not block,
    )
