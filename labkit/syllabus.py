"""What a lesson asks of a learner: its sections (core or deep dive), its exercises, and how long they take.

Times are estimated from the text the learner meets, the same way for every lesson, so a stated
time can be checked rather than guessed:

- reading: markdown at READING_WPM words a minute, code at CODE_LINES_PER_MIN lines a minute;
- an exercise: its prompt read, plus EXERCISE_BASE_MIN to think and check, plus a minute per
  line of its solution (writing is slower than reading).

A numbered section is `## N. Title (core)` or `## N. Title (deep dive)`; an exercise's prompt
starts `**Exercise N — Title** *(warm-up, core)*` (or transfer / deep dive). The cells before
section 1 and the Summary count as core; Where next and Sources are not timed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Section", "ExercisePrompt", "Syllabus", "read_syllabus", "core_cells", "READING_WPM",
           "CODE_LINES_PER_MIN", "EXERCISE_BASE_MIN"]

READING_WPM = 180
CODE_LINES_PER_MIN = 10
EXERCISE_BASE_MIN = 2.0
_SECTION = re.compile(r"^## (\d+)\. (.+?) \((core|deep dive)\)\s*$", re.MULTILINE)
_ANY_HEADING = re.compile(r"^## (.+?)\s*$", re.MULTILINE)
_EXERCISE = re.compile(r"^\*\*Exercise (\d+) — (.+?)\*\* \*\((warm-up|transfer), (core|deep dive)\)\*", re.MULTILINE)
_TIME = re.compile(r"\*\*Time:\*\* about (\d+) min on the core path .*?, (\d+) min for everything")


def _words(text: str) -> int:
    return len(re.findall(r"[\w'’.-]+", text))


def _code_lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip() and not line.strip().startswith("#"))


@dataclass
class Section:
    """A numbered section: its title, whether it is core, and its reading minutes."""

    number: int
    title: str
    core: bool
    minutes: float = 0.0


@dataclass
class ExercisePrompt:
    """An exercise as the notebook presents it: title, kind, core or not, and its minutes."""

    number: int
    title: str
    kind: str
    core: bool
    minutes: float = 0.0


@dataclass
class Syllabus:
    """One lesson's sections and exercises, with the estimated and the stated times."""

    path: Path
    intro_minutes: float = 0.0
    sections: list[Section] = field(default_factory=list)
    exercises: list[ExercisePrompt] = field(default_factory=list)
    stated_core: int | None = None
    stated_total: int | None = None

    @property
    def core_minutes(self) -> float:
        return (self.intro_minutes + sum(s.minutes for s in self.sections if s.core)
                + sum(e.minutes for e in self.exercises if e.core))

    @property
    def total_minutes(self) -> float:
        return self.intro_minutes + sum(s.minutes for s in self.sections) + sum(e.minutes for e in self.exercises)


def _reading_minutes(cell) -> float:
    if cell.cell_type == "markdown":
        return _words(cell.source) / READING_WPM
    return _code_lines(cell.source) / CODE_LINES_PER_MIN


def read_syllabus(path: str | Path) -> Syllabus:
    """Parse a lesson notebook's sections, exercises and stated times (`**Time:** ...` in its first cell)."""
    import nbformat

    from .exercises.solutions import solution_regions

    path = Path(path)
    cells = nbformat.read(path, as_version=4).cells
    syllabus = Syllabus(path)
    stated = _TIME.search(cells[0].source) if cells else None
    if stated:
        syllabus.stated_core, syllabus.stated_total = int(stated.group(1)), int(stated.group(2))
    place = "intro"  # intro | section | summary | exercises | untimed
    section: Section | None = None
    exercise: ExercisePrompt | None = None
    for cell in cells:
        headings = _ANY_HEADING.findall(cell.source) if cell.cell_type == "markdown" else []
        for heading in headings:
            numbered = _SECTION.match(f"## {heading}")
            if numbered:
                section = Section(int(numbered.group(1)), numbered.group(2), numbered.group(3) == "core")
                syllabus.sections.append(section)
                place = "section"
            elif heading == "Summary":
                place = "summary"
            elif heading == "Exercises":
                place = "exercises"
            else:
                place = "untimed"
        if place == "exercises":
            found = _EXERCISE.search(cell.source) if cell.cell_type == "markdown" else None
            if found:
                exercise = ExercisePrompt(int(found.group(1)), found.group(2), found.group(3),
                                          found.group(4) == "core", EXERCISE_BASE_MIN)
                syllabus.exercises.append(exercise)
            if exercise is not None:  # its prompt is read; its code counts by the lines of its solution
                exercise.minutes += (_reading_minutes(cell) if cell.cell_type == "markdown" else
                                     sum(_code_lines(r) for r in solution_regions(cell.source, path.name)))
            continue
        minutes = _reading_minutes(cell)
        if place in ("intro", "summary"):
            syllabus.intro_minutes += minutes
        elif place == "section" and section is not None:
            section.minutes += minutes
    return syllabus


def core_cells(path: str | Path) -> list[int]:
    """Indices of the cells on a lesson's core path, in order: every cell before section 1, the sections marked
    core, the Summary, the Exercises' opening cells and each core exercise (prompt, solution, check).

    A learner who follows only the core path runs exactly these cells, so they must run alone.
    """
    import nbformat

    cells = nbformat.read(Path(path), as_version=4).cells
    keep, place, core = [], "intro", True
    for index, cell in enumerate(cells):
        headings = _ANY_HEADING.findall(cell.source) if cell.cell_type == "markdown" else []
        for heading in headings:
            numbered = _SECTION.match(f"## {heading}")
            if numbered:
                place, core = "section", numbered.group(3) == "core"
            elif heading in ("Summary", "Exercises"):
                place, core = heading.lower(), True
            elif place != "intro":
                place, core = "untimed", False
        if place == "exercises" and cell.cell_type == "markdown":
            found = _EXERCISE.search(cell.source)
            if found:
                core = found.group(4) == "core"
        if core:
            keep.append(index)
    return keep
