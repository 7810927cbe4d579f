"""docs/workshop.md stays true to the lessons: its two paths list real sections and exercises, with the minutes
the lessons' own syllabus gives them, and the README links it."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from labkit.lessons import lesson_notebooks
from labkit.syllabus import Syllabus, read_syllabus

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "workshop.md"


def _table(heading: str) -> dict[str, tuple[set[int], set[int], int]]:
    """The table under `### heading`: {lesson: (sections, exercises, minutes)}, plus '**total**'."""
    text = GUIDE.read_text(encoding="utf-8").split(f"### {heading}", 1)[1].split("\n#", 1)[0]
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not (re.fullmatch(r"\d\d_\w+", cells[0]) or cells[0] == "**total**"):
            continue
        numbers = [set(map(int, cell.split())) for cell in cells[1:3]]
        rows[cells[0]] = (numbers[0], numbers[1], int(cells[3].strip("*")))
    return rows


@pytest.fixture(scope="module")
def syllabi() -> dict[str, Syllabus]:
    return {path.stem: read_syllabus(path) for path in lesson_notebooks()}


def _left_out_of_three_hours() -> set[str]:
    """The lessons the guide's paragraph 'Not in the three hours: `NN_name` (why) and ...' names."""
    paragraphs = GUIDE.read_text(encoding="utf-8").split("\n\n")
    paragraph = next((p for p in paragraphs if p.startswith("Not in the three hours:")), "")
    return set(re.findall(r"`(\d\d_\w+)`", paragraph))


def test_the_three_hour_path_is_the_core_of_every_lesson_it_does_not_leave_out_by_name(syllabi):
    table = _table("Three hours: the core path")
    left_out = _left_out_of_three_hours()
    rows = set(table) - {"**total**"}
    assert rows | left_out == set(syllabi) and not rows & left_out, (
        "every lesson is a row of the three-hour table or named on the 'Not in the three hours:' line, not both")
    for lesson in rows:
        sections, exercises, minutes = table[lesson]
        syllabus = syllabi[lesson]
        assert sections == {s.number for s in syllabus.sections if s.core}, lesson
        assert exercises == {e.number for e in syllabus.exercises if e.core}, lesson
        assert minutes == round(syllabus.core_minutes), lesson
    total = sum(syllabi[lesson].core_minutes for lesson in rows)
    assert table["**total**"][2] == round(total) <= 180


def test_the_full_day_adds_deep_dives_that_exist_with_the_minutes_they_take(syllabi):
    table = _table("A full day: the core path and the deep dives that carry it")
    assert set(table) - {"**total**"} == set(syllabi), "one row per lesson"
    total = 0.0
    for lesson, syllabus in syllabi.items():
        sections, exercises, minutes = table[lesson]
        deep_sections = {s.number: s.minutes for s in syllabus.sections if not s.core}
        deep_exercises = {e.number: e.minutes for e in syllabus.exercises if not e.core}
        assert sections <= set(deep_sections), f"{lesson}: only deep-dive sections are added"
        assert exercises <= set(deep_exercises), f"{lesson}: only deep-dive exercises are added"
        day = syllabus.core_minutes + sum(deep_sections[n] for n in sections) + sum(deep_exercises[n] for n in exercises)
        assert minutes == round(day), lesson
        total += day
    assert table["**total**"][2] == round(total)
    hours, minutes = map(int, re.search(r"about (\d+) h (\d+) min of work", GUIDE.read_text()).groups())
    assert abs(60 * hours + minutes - total) <= 5, "the prose's figure for the day"


def test_the_readme_links_the_guide():
    assert "docs/workshop.md" in (ROOT / "README.md").read_text(encoding="utf-8")
