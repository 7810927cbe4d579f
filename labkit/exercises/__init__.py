"""Auto-checked exercises: `q1.check()`, `q1.hint()`, `q1.solution()` in a lesson notebook.

Each lesson's exercises live in `labkit/exercises/lessonNN.py`, declared and numbered by one
`bind(...)` call; a notebook imports them with `from labkit.exercises.lesson01 import q1, q2`.
See `core.py` for how to write one, `solutions.py` for where the answers live.
"""
from .core import Exercise, Incorrect, Outcome, bind

__all__ = ["Exercise", "Incorrect", "Outcome", "bind"]
