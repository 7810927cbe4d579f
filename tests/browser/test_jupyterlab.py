"""Every lesson and every learner copy, Run All in JupyterLab in Chromium; Lesson 03's slider re-runs ORT.

Each test opens its notebook in a fresh browser context with its own kernel (stopped afterwards), so
the tests depend on no order. What is asserted is read back from the .ipynb JupyterLab saved.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from labdriver import check_outcomes, run_problems
from labkit.lessons import lesson_notebooks

LESSONS = [path.name for path in lesson_notebooks()]
IDS = [name.removesuffix(".ipynb") for name in LESSONS]


def run_and_save(lab, path: str):
    notebook = lab.notebook(path)
    lab.timings[path] = notebook.run_all()
    notebook.save()
    return notebook


@pytest.mark.parametrize("name", LESSONS, ids=IDS)
def test_lesson_run_all(lab, name):
    """Run All on the lesson (instructor copy) finishes: no error output, every code cell executed."""
    with lab.guard():
        notebook = run_and_save(lab, name)
        problems = run_problems(notebook.saved(), name)
        lab.expect(not problems, "after Run All and save:\n  " + "\n  ".join(problems))


@pytest.mark.parametrize("name", LESSONS, ids=IDS)
def test_learner_copy_run_all(lab, learner_copies, name):
    """Run All on the learner copy: no error output, every cell executed, every qN.check() "Not attempted"."""
    assert (learner_copies / name).exists(), f"`labkit student-copy` wrote no learner copy of {name}"
    with lab.guard():
        notebook = run_and_save(lab, f"learner/{name}")
        saved = notebook.saved()
        problems = run_problems(saved, f"learner/{name}")
        problems += check_outcomes(saved, f"learner/{name}")[1]
        lab.expect(not problems, "after Run All and save:\n  " + "\n  ".join(problems))


SIZE = re.compile(r"->\s*(\d+)\s*x\s*(\d+)\s*px")


@dataclass(frozen=True)
class WidgetState:
    caption: str        # e.g. "x2.5: 78 px -> 195 x 195 px"
    size: tuple         # (width, height) the caption states
    src: str            # the <img>'s URL (a new blob: URL per picture)
    digest: str         # SHA-256 of the picture's bytes
    width: int          # the picture's natural width in the browser


def widget_state(lab, caption, picture) -> WidgetState:
    text = caption.inner_text().strip()
    match = SIZE.search(text)
    lab.expect(match, f"the caption {text!r} does not say the size as '-> W x H px'")
    width = picture.evaluate("img => img.complete ? img.naturalWidth : -1")
    return WidgetState(text, (int(match[1]), int(match[2])), picture.get_attribute("src"),
                       lab.image_digest(picture), width)


def test_lesson03_slider_reruns_the_session(lab):
    """Moving the factor slider re-runs the ORT session: the caption's size and the picture both change."""
    name = next((n for n in LESSONS if n.startswith("03_")), None)
    assert name, "no Lesson 03 notebook in notebooks/"
    with lab.guard():
        notebook = run_and_save(lab, lab.copy(name, "slider"))
        problems = run_problems(notebook.saved(), name)
        lab.expect(not problems, "Run All failed before the slider could be tried:\n  " + "\n  ".join(problems))

        page = lab.page
        box = notebook.panel.locator(".jp-OutputArea-output .widget-vbox").filter(
            has=page.locator(".widget-slider")).first
        box.scroll_into_view_if_needed()
        handle = box.locator(".widget-slider .noUi-handle").first
        caption = box.locator(":scope > .widget-label").first
        picture = box.locator("img").first
        before = widget_state(lab, caption, picture)
        lab.expect(before.width == before.size[0],
                   f"before the move the picture is {before.width} px wide, the caption says {before.caption!r}")

        handle.focus()
        page.keyboard.press("ArrowRight")  # one step up (2.5 -> 2.75), as a learner moves it with the keys
        # The new caption comes from the kernel's observer after the ORT session ran; it sets the picture first.
        page.wait_for_function(
            """([cap, img, oldCaption, oldSrc]) => cap.innerText.trim() !== oldCaption && img.src !== oldSrc
                                                 && img.complete && img.naturalWidth > 0""",
            arg=[caption.element_handle(), picture.element_handle(), before.caption, before.src], timeout=60_000)
        after = widget_state(lab, caption, picture)

        lab.expect(after.size[0] > before.size[0] and after.size[1] > before.size[1],
                   f"ArrowRight raised the factor but the caption's size did not grow: "
                   f"{before.caption!r} -> {after.caption!r}")
        lab.expect(after.digest != before.digest, "the picture's bytes did not change after the slider moved")
        lab.expect(after.width == after.size[0],
                   f"after the move the picture is {after.width} px wide, the caption says {after.caption!r}")
        lab.notes.append(f"Lesson 03 slider: {before.caption!r} -> {after.caption!r}, picture {before.width} -> "
                         f"{after.width} px wide, bytes {before.digest[:12]} -> {after.digest[:12]}")
