"""Auto-checked exercises: `q1.check()`, `q1.hint()`, `q1.solution()` in a lesson notebook.

Each lesson's exercises live in `labkit/exercises/lessonNN.py`; a notebook imports them with
`from labkit.exercises.lesson01 import q1, q2`. See `core.py` for how to write one.
"""
from .core import Exercise, Incorrect, Outcome

__all__ = ["Exercise", "Incorrect", "Outcome"]
