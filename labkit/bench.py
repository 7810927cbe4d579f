"""Former name of `labkit.measure`, kept only while Lesson 06 still says `from labkit import bench`.

Import `labkit.measure` instead; the `labkit bench` command lives in labkit/commands/bench.py.
Delete this file once no notebook imports it.
"""
from .measure import *  # noqa: F401,F403
from .measure import __all__  # noqa: F401
