"""The functions behind the Space's buttons: Compare, the threshold slider and Search.

Every handler turns a failure into a message in the page (messages.failure_message) instead of raising.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from ..inference import UNTRAINED_WARNING, SapiensIDPipeline
from ..people_compare import PeopleComparison
from .gallery_search import search_people, search_photos
from .messages import DEFAULT_THRESHOLD, failure_message, rarity_words, verdict_markdown
from .pictures import Detection, model_grid_size, people_overlay, render_overlay, seen_words
from .uploads import person_number, read_upload


class DemoHandlers:
    """The functions behind the buttons; they return messages instead of raising."""

    def __init__(self, pipeline: SapiensIDPipeline):
        self.pipeline = pipeline
        self.grid_size = model_grid_size(pipeline)

    def compare(self, image_a: Any, image_b: Any, person_a: float | None = -1, person_b: float | None = -1) -> tuple:
        """Two uploads -> (overlay A, overlay B, cosine score, verdict, messages, threshold, its origin):
        the verdict is taken at the model's calibrated threshold (`SapiensIDPipeline.verify`). When a
        picture holds several people, or a person is chosen (`person_a` / `person_b` >= 0, the numbers on
        the overlays), every person is compared (`SapiensIDPipeline.compare`): the best-matching
        pair, or the chosen people."""
        try:
            images = [read_upload(image_a, "Image A"), read_upload(image_b, "Image B")]
            chosen_people = (person_number(person_a), person_number(person_b))
            # Several people, or a person chosen: every pair; else (and for a picture whose every find was
            # refused) the single-person verdict, as `sapiensid compare` (people_compare.compare_photos).
            verification = self.pipeline.compare(images[0], images[1], pair=chosen_people)
            if isinstance(verification, PeopleComparison):
                return self._compare_people(images, chosen_people, verification)
        except Exception as error:  # every failure becomes a message in the page
            message = failure_message(error)
            gr.Warning(message)
            return None, None, None, "", message, gr.skip(), gr.skip()
        result, chosen = verification.result, verification.threshold
        origin = {"value": chosen.value, "origin": chosen.origin, "rarity": rarity_words(verification.false_match_rate)}
        overlays, messages = [], []
        for index, (rgb, label) in enumerate(zip(images, ("Image A", "Image B"), strict=True)):
            found = Detection.from_result(result, index)
            overlays.append(render_overlay(rgb, found, self.grid_size))
            messages.append(found.summary(label))
            if result.framed[index]:
                messages.append(f"{label}: the person fills little of the photo, so they were cut from it first (as the model's training photos were framed).")
            if not found.person_found:
                gr.Warning(f"No person found in {label}: nothing to compare.")
        if not self.pipeline.trained:
            messages.insert(0, UNTRAINED_WARNING)
        nobody = [label for index, label in enumerate(("A", "B")) if not result.person_found[index]]
        if nobody:  # no score, no verdict: both would be the same for any two such pictures
            verdict = f"### Unknown\nNo person found in image {' and '.join(nobody)}."
            return overlays[0], overlays[1], None, verdict, "\n".join(messages), chosen.value, origin
        # Rounded once, so the number on the page and the verdict always agree.
        score = round(float(np.clip(verification.score, -1.0, 1.0)), 4)
        verdict = self.rethreshold(score, chosen.value, origin)
        return overlays[0], overlays[1], score, verdict, "\n".join(messages), chosen.value, origin

    def _compare_people(
        self, images: list[np.ndarray], chosen_people: tuple[int | None, int | None], comparison: PeopleComparison
    ) -> tuple:
        """Every person of A against every person of B: numbered boxes on both overlays, the pair used in yellow."""
        chosen = comparison.threshold
        origin = {"value": chosen.value, "origin": chosen.origin, "rarity": rarity_words(comparison.false_match_rate)}
        overlays = [
            people_overlay(rgb, [row.person for row in people], index)
            for rgb, people, index in zip(
                images, (comparison.people_a, comparison.people_b), comparison.pair, strict=True
            )
        ]
        first, second = comparison.pair
        how = "the best-matching pair" if chosen_people == (None, None) else "the people chosen"
        messages = [
            f"Image {label}: {len(people)} {'person' if len(people) == 1 else 'people'} found (numbered on the "
            f"picture); person {index} compared ({seen_words(people[index].person)})."
            for label, people, index in (("A", comparison.people_a, first), ("B", comparison.people_b, second))
        ]
        messages.append(
            f"Compared {how}: person {first} of A with person {second} of B (yellow boxes). Type a person's "
            "number under a picture to compare another; -1 picks the best match."
        )
        if comparison.pairs_judged > 1:
            messages.append(
                f"The best of {comparison.pairs_judged} pairs is judged, so the threshold is raised above the one "
                "for a single pair (its origin says by how much): the best of many pairs of different people "
                "scores higher than one pair. Choose a person on each side to judge one pair."
            )
        if not self.pipeline.trained:
            messages.insert(0, UNTRAINED_WARNING)
        score = round(float(np.clip(comparison.score, -1.0, 1.0)), 4)
        verdict = self.rethreshold(score, chosen.value, origin)
        return overlays[0], overlays[1], score, verdict, "\n".join(messages), chosen.value, origin

    def rethreshold(self, score: float | None, threshold: float | None, chosen: dict | None = None) -> str:
        """The verdict at the slider's threshold; it keeps the calibrated threshold's origin until moved."""
        threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        origin = chosen["origin"] if chosen and abs(float(chosen["value"]) - threshold) < 5e-4 else "set on the slider"
        rarity = chosen.get("rarity") if chosen else None  # about the score: it holds wherever the slider is
        return verdict_markdown(score, threshold, self.pipeline.trained, origin, rarity)

    def search(
        self,
        gallery_images: Any,
        query_image: Any,
        top_k: float,
        cache: dict | None,
        every_person: bool = False,
        query_person: float | None = 0,
    ) -> tuple:
        """Gallery uploads + query upload -> (ranked gallery, result table, query overlay, messages, cache).

        With `every_person`, every person found in the gallery photos is a gallery entry (people_search.py)
        and the query is its `query_person`-th person (0 = most prominent); the matches are shown with the
        matched person boxed.

        `cache` maps an upload's server path (Gradio names uploads by content hash) to its embedding
        and detection, so repeated queries against one gallery embed each picture once.
        """
        cache = dict(cache or {})
        if every_person:
            return search_people(self.pipeline, gallery_images, query_image, top_k, cache, query_person)
        return search_photos(self.pipeline, self.grid_size, gallery_images, query_image, top_k, cache)
