"""The README's Python examples run as written, with the shipped model, and say what they print."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
PEOPLE = REPO.parent / "shared" / "data" / "people"

pytestmark = pytest.mark.skipif(not PEOPLE.is_dir(), reason="needs ../shared/data/people beside the repository")


def readme_block(section: str, language: str) -> str:
    """The first ```language block under the README heading `section`."""
    text = (REPO / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.search(rf"```{language}\n(.*?)```", body, re.S).group(1)


def readme_python_block(section: str) -> str:
    return readme_block(section, "python")


def run_block(code: str) -> tuple[dict, str]:
    """Run `code` from the repository root (its paths are relative to it), returning its names and output."""
    namespace: dict = {"__name__": "readme_example"}
    printed = io.StringIO()
    previous = os.getcwd()
    os.chdir(REPO)
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(code, "README.md", "exec"), namespace)
    finally:
        os.chdir(previous)
    return namespace, printed.getvalue()


def test_the_one_minute_example_compares_and_embeds_as_its_comments_say():
    code = readme_python_block("In a minute")
    namespace, printed = run_block(code)
    answer, result = namespace["answer"], namespace["result"]
    assert answer.same == (answer.score >= answer.threshold.value)
    # The output the README shows beside the print (verdict, score, threshold) is the one it gives.
    shown = re.search(r"print\(answer\.same.*?#\s*(\S+ \S+ \S+)", code).group(1)
    assert printed.splitlines()[0].startswith(shown), (printed, shown)
    embeddings = np.asarray(result.embeddings)
    assert embeddings.shape == (2, namespace["pipeline"].model.config.output_dim)
    assert f"{embeddings.shape}" in code  # the shape in the comment is the shipped model's
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert bool(result.person_found.all())


def test_the_transformers_example_gives_the_pipelines_score(tmp_path):
    code = readme_python_block("Use it from Python").replace('path="retina.png"', f'path={str(tmp_path / "retina.png")!r}')
    namespace, printed = run_block(code)
    from sapiensid_hf.inference import load_pipeline

    photos = [str(REPO / photo) for photo in namespace["photos"]]
    expected = load_pipeline(REPO / "pretrained" / "sapiensid-small").similarity(*photos)
    assert float(printed.split()[0]) == pytest.approx(expected, abs=1e-5)
    assert (tmp_path / "retina.png").is_file()


def test_the_one_minute_commands_run_with_their_defaults(capsys, monkeypatch, tmp_path):
    from sapiensid_cli import main

    monkeypatch.delenv("SAPIENSID_MODEL", raising=False)  # the shipped model, as a new user gets it
    monkeypatch.chdir(REPO)
    commands = [shlex.split(line, comments=True)[1:] for line in readme_block("In a minute", "bash").splitlines()
                if line.startswith("sapiensid ")]  # fmt: skip
    assert [command[0] for command in commands] == ["compare", "search", "embed", "demo"]
    outputs = {}
    for command in commands[:-1]:  # `demo` serves a page until stopped (tests/test_space_app.py builds it)
        command = [str(tmp_path / "people.parquet") if arg == "outputs/people.parquet" else arg for arg in command]
        assert main(command) == 0, capsys.readouterr().err[-2000:]
        outputs[command[0]] = capsys.readouterr().out
    assert "verdict at threshold" in outputs["compare"] and "SAME PERSON" in outputs["compare"]
    assert "| 2 |" in outputs["search"] and "face_a_2.jpg" in outputs["search"]
    assert "people in 8 photo(s)" in outputs["embed"] and (tmp_path / "people.parquet").is_file()
