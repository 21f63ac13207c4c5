"""Benchmark results in markdown: each benchmark owns one `## ` section of docs/benchmarks.md.

The benchmarks are scripts (`python benchmarks/bench_x.py`), so Python puts this folder on `sys.path`
and they import this module as `from markdown_report import ...`, from any working directory.
"""

from __future__ import annotations

from pathlib import Path


def update_section(path: Path, heading: str, body: str) -> None:
    """Replace the `heading` section (`## ...` line up to the next `## `) of the markdown file at `path`
    with `body`, in place, or append `body` when there is no such section; every other section is left
    as it is. A missing file (and folder) is created with a `# Benchmarks` title."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    parts = text.split("\n## ")
    head, sections = parts[0], ["## " + part for part in parts[1:]]
    new_section = body.rstrip() + "\n"
    mine = [index for index, section in enumerate(sections) if _has_heading(section, heading)]
    if mine:
        # One section per heading: the first keeps its place, any repeats of it go.
        first, *repeats = mine
        sections[first] = new_section
        sections = [section for index, section in enumerate(sections) if index not in repeats]
    else:
        sections.append(new_section)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([head.rstrip() + "\n"] + sections))


def _has_heading(section: str, heading: str) -> bool:
    return section.startswith(heading + "\n") or section.strip() == heading


def publish_section(lines: list[str], heading: str, path: Path | None) -> str:
    """Join a benchmark's section `lines`, write them into the markdown file at `path` (when given) with
    `update_section`, print them, and return the text."""
    section = "\n".join(lines)
    if path:
        update_section(path, heading, section)
    print(section)
    return section


def difference_table(first_header: str, rows: dict[str, dict[str, float]], baseline: str) -> list[str]:
    """Markdown table lines of fractions shown in %: one row per label of `rows`, one column per key of
    the baseline row, each figure but the baseline's followed by its difference to the baseline's."""
    reference = rows[baseline]
    columns = list(reference)
    lines = ["| " + " | ".join([first_header, *columns]) + " |", "| --- |" + " ---: |" * len(columns)]
    for label, figures in rows.items():
        cells = [
            f"{100 * figures[c]:.1f}" + ("" if label == baseline else f" ({100 * (figures[c] - reference[c]):+.1f})")
            for c in columns
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines
