"""Exercises of Lesson 01: the trained classifier in ORT (mirrored photos, any photo size), a preprocessing recipe,
and an export for a runtime that stops at opset 17."""
from __future__ import annotations

import numpy as np
import onnx

from .checks import (call_learner_model, exporter_of, learner_session, require_close, require_exporter,
                     require_input_specs, require_inputs, require_onnx_file, require_outputs, require_type,
                     run_learner_file)
from .core import Exercise, Incorrect, bind

__all__ = ["q1", "q2", "q3", "q4"]

RESIZE, CROP = 232, 224  # ResNet50_Weights.IMAGENET1K_V2.transforms(): the recipe exercise 3 asks for
OLD_OPSET, NEW_OPSET = 17, 20


def _torch_logits(model, batch: np.ndarray) -> np.ndarray:
    """The notebook's PyTorch model on `batch`: the truth the learner's ONNX file must match."""
    import torch

    return call_learner_model("classifier", model, torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))[0]


# --- Exercise 1: the top-3 of the mirrored photos, through ORT ------------------------------------------

def _top3(logits: np.ndarray, names) -> dict[str, list[str]]:
    from ..imagenet import categories

    labels = categories()
    return {name: [labels[k] for k in np.argsort(-row)[:3]] for name, row in zip(names, logits)}


def _explain_q1(wrong, mirrored, classifier, photo_batch, names) -> None:
    """Name the mistake that explains every wrong entry: no mirror, the wrong axis, the order, or none of these."""
    name, answer = wrong[0]
    if all(a[::-1] == mirrored[n] for n, a in wrong):
        raise Incorrect(f"`ex1_top3[{name!r}]` is {answer}: best first, please (np.argsort(-logits)[:3])")
    as_they_are = _top3(_torch_logits(classifier, photo_batch), names)
    if all(a == as_they_are[n] for n, a in wrong):
        raise Incorrect(f"`ex1_top3[{name!r}]` is the top-3 of the photo as it is: mirror the batch first, "
                        "photo_batch[..., ::-1] (the last axis is the width)")
    upside_down = _top3(_torch_logits(classifier, photo_batch[:, :, ::-1]), names)
    if all(a == upside_down[n] for n, a in wrong):
        raise Incorrect(f"`ex1_top3[{name!r}]` is the top-3 of the photo flipped top to bottom: axis 2 of NCHW is "
                        "the height; mirror left to right along the last axis, photo_batch[..., ::-1]")
    raise Incorrect(f"`ex1_top3[{name!r}]` is {answer}, which is not the mirrored photo's top-3: run "
                    "photo_batch[..., ::-1] through the legacy export's session, then take the three "
                    "largest logits, best first")


def _check_q1(ex1_top3, classifier, photo_batch, photo_names) -> str:
    require_type("ex1_top3", ex1_top3, dict)
    names = list(photo_names)
    missing, extra = [n for n in names if n not in ex1_top3], [str(k) for k in ex1_top3 if k not in names]
    if missing or extra:
        raise Incorrect(f"`ex1_top3` should have one entry per photo, keyed by its name (photo_names); "
                        f"missing: {missing or 'none'}, unexpected: {extra or 'none'}")
    photo_batch = np.asarray(photo_batch, dtype=np.float32)
    mirrored = _top3(_torch_logits(classifier, photo_batch[..., ::-1]), names)
    wrong = []
    for name in names:
        answer = ex1_top3[name]
        require_type(f"ex1_top3[{name!r}]", answer, list, tuple)
        if any(isinstance(item, (int, np.integer)) for item in answer):
            raise Incorrect(f"`ex1_top3[{name!r}]` holds class indices {list(answer)}: give the labels, "
                            "imagenet.categories()[k]")
        answer = [str(item) for item in answer]
        if answer != mirrored[name]:
            wrong.append((name, answer))
    if wrong:
        _explain_q1(wrong, mirrored, classifier, photo_batch, names)
    cat = f"; the mirrored cat is still {', '.join(mirrored['chelsea'])}" if "chelsea" in mirrored else ""
    return f"the top-3 of all {len(names)} mirrored photos, best first{cat}"


# --- Exercise 2: the trained classifier for photos of any size, on the default exporter ------------------

EX2_CROP = (slice(None, 3), slice(None), slice(32, 192), slice(None))  # photo_batch[:3, :, 32:192, :]: 160x224


def _new_sizes(photo_batch: np.ndarray) -> dict[str, np.ndarray]:
    """Photo batches of sizes the lesson never ran: narrow, tall and odd crops, and larger padded photos."""
    return {"1 photo of 224x160": photo_batch[4:5, :, :, 32:192],
            "2 photos of 193x211": photo_batch[5:7, :, 10:203, 3:214],
            "3 photos of 256x288": np.pad(photo_batch[:3], ((0, 0), (0, 0), (16, 16), (32, 32)), mode="reflect")}


def _check_q2(ex2_path, ex2_logits, classifier, photo_batch) -> str:
    model = require_onnx_file("ex2_path", ex2_path)
    require_exporter("ex2_path", model, "default")
    require_inputs(model, ["image"])
    require_outputs(model, ["logits"])
    spec = require_input_specs("ex2_path", model, count=1)[0]
    if len(spec.shape) != 4 or spec.shape[1] != 3:
        raise Incorrect(f"input 'image' should be [batch, 3, height, width], found {spec.shape_text()}")
    fixed = [f"the {what} (dim {axis}) is fixed at {spec.shape[axis]}"
             for axis, what in ((0, "batch"), (2, "height"), (3, "width")) if isinstance(spec.shape[axis], int)]
    if fixed:
        raise Incorrect(f"input 'image' is {spec.shape_text()} in the saved file: {', '.join(fixed)}; give each of "
                        "dims 0, 2 and 3 a torch.export.Dim in dynamic_shapes, then read the saved shape again "
                        "(labkit.input_specs)")
    session = learner_session("ex2_path", model)
    photo_batch = np.asarray(photo_batch, dtype=np.float32)
    for what, batch in _new_sizes(photo_batch).items():
        got = run_learner_file("ex2_path", session, {"image": np.ascontiguousarray(batch)}, what)[0]
        require_close("ex2_path", what, _torch_logits(classifier, batch), got,
                      fix="export the trained classifier itself (not torch_model, not a copy with other weights)")
    require_type("ex2_logits", ex2_logits, np.ndarray)
    band = np.ascontiguousarray(photo_batch[EX2_CROP])
    if ex2_logits.shape != (3, 1000):
        raise Incorrect(f"`ex2_logits` should hold the logits of the first three photos' 160x224 band, shape "
                        f"(3, 1000); its shape is {ex2_logits.shape}: run photo_batch[:3, :, 32:192, :] through "
                        "your session and take its first output")
    ours = run_learner_file("ex2_path", session, {"image": band}, "photo_batch[:3, :, 32:192, :]")[0]
    if not np.array_equal(ex2_logits, ours) and np.array_equal(ex2_logits, _torch_logits(classifier, band)):
        raise Incorrect("`ex2_logits` are PyTorch's logits, bit for bit, not ONNX Runtime's: run the band through an "
                        "ORT session on your file (the point is that the file accepts a size it was not exported at)")
    require_close("ex2_logits", "photo_batch[:3, :, 32:192, :]", ours, ex2_logits,
                  fix="run exactly those three 160x224 bands through an ORT session on your file")
    return (f"input 'image' {spec.shape_text()}, output 'logits'; ORT agrees with classifier on "
            f"{', '.join(_new_sizes(photo_batch))}, and ex2_logits are ORT's logits of the 160x224 bands")


# --- Exercise 3: another model's preprocessing recipe, checked against torchvision ---------------------

def _test_images() -> dict[str, np.ndarray]:
    """Shipped photos plus synthetic sizes: enlarged (short side < 232), shrunk, odd sizes and offsets."""
    from ..images import load_image
    from ..paths import data_path

    rng = np.random.default_rng(1)
    images = {name: load_image(data_path(f"images/{name}.jpg")) for name in ("chelsea", "grace_hopper", "brick")}
    for height, width in ((150, 97), (233, 331), (501, 377)):
        images[f"noise {height}x{width}"] = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return images


def _shrinks(image: np.ndarray) -> bool:
    return min(image.shape[:2]) > RESIZE


def _torchvision_reference(image: np.ndarray) -> np.ndarray:
    import torch
    from torchvision.models import ResNet50_Weights

    transform = ResNet50_Weights.IMAGENET1K_V2.transforms()
    return transform(torch.from_numpy(image).permute(2, 0, 1).float() / 255).numpy()[None]


class _CallsTorchvision(Exception):
    """Raised inside the learner's function the moment any torchvision code runs."""


def _without_torchvision(function, image: np.ndarray):
    """Call `function(image)`; refuse the answer if any of torchvision's Python code runs meanwhile."""
    import sys

    def watch(frame, event, arg):
        if event == "call" and "torchvision" in frame.f_code.co_filename.replace("\\", "/").split("/"):
            raise _CallsTorchvision(frame.f_code.co_name)

    previous = sys.getprofile()
    sys.setprofile(watch)
    try:
        return function(image)
    except _CallsTorchvision as caught:
        raise Incorrect(f"ex3_preprocess calls torchvision (its {caught} ran): this exercise rebuilds the "
                        "transform with numpy (and OpenCV if you like), so the recipe is yours and needs no "
                        "torchvision where the model is deployed") from None
    finally:
        sys.setprofile(previous)


def _check_q3(ex3_preprocess) -> str:
    from .. import imagenet
    from ..compare import compare_arrays

    if not callable(ex3_preprocess):
        raise Incorrect(f"`ex3_preprocess` should be a function image -> array, but it is a "
                        f"{type(ex3_preprocess).__name__}: define it with def ex3_preprocess(image): ...")
    images = _test_images()
    outputs, errors = {}, {}
    for name, image in images.items():
        ours = _without_torchvision(ex3_preprocess, image.copy())
        require_type(f"ex3_preprocess({name!r})", ours, np.ndarray)
        if ours.shape != (1, 3, CROP, CROP):
            fix = (": add the batch dimension ([None])" if ours.shape == (3, CROP, CROP) else
                   ": channels first, HWC -> CHW with transpose(2, 0, 1), then [None]"
                   if sorted(ours.shape) == sorted((1, 3, CROP, CROP)) else "")
            raise Incorrect(f"ex3_preprocess should return shape (1, 3, 224, 224), got {ours.shape} for "
                            f"'{name}'{fix}")
        if ours.dtype != np.float32:
            raise Incorrect(f"ex3_preprocess should return float32 (what the model takes), got {ours.dtype}: "
                            "finish with .astype(np.float32)")
        outputs[name] = ours
        errors[name] = compare_arrays("ex3_preprocess", name, _torchvision_reference(image), ours, 1e-3, 0.0)
    bad = {name: row.max_abs for name, row in errors.items() if not row.passed}
    if not bad:
        return (f"matches ResNet50_Weights.IMAGENET1K_V2.transforms() within 1e-3 on {len(images)} images "
                "(enlarged, shrunk and odd sizes)")
    name = max(bad, key=bad.get)
    if all(_shrinks(images[n]) for n in bad):
        raise Incorrect(f"right when the image is enlarged, wrong when it is shrunk (max difference {bad[name]:.3f} "
                        f"on '{name}'): shrinking needs an antialiasing filter, and cv2.INTER_LINEAR has none. "
                        "Resize with the lesson's resize_antialiased (or antialias_matrix for each axis)")
    if np.allclose(outputs[name], imagenet.preprocess(images[name]), atol=1e-4):
        raise Incorrect("that is the recipe of section 5 (shorter side 256, then a 224 crop); this one resizes "
                        "the shorter side to 232 before the same 224 crop")
    raise Incorrect(f"ex3_preprocess differs from torchvision's transform by up to {bad[name]:.3f} on '{name}' "
                    f"{images[name].shape[:2]}: check the resize (shorter side 232, the longer one "
                    "int(232 * long / short)), the crop offsets (round((size - 224) / 2)), the scaling by 1/255 "
                    "and the mean/std")


# --- Exercise 4: the classifier for a runtime that loads opset 17 at most ---------------------------------

def _declared_opset(model: onnx.ModelProto) -> int | None:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _check_q4(ex4_path, ex4_changed, classifier, photo_batch) -> str:
    model = require_onnx_file("ex4_path", ex4_path)
    declared = _declared_opset(model)
    if declared != OLD_OPSET:
        converter_failed = exporter_of(model) == "default" and declared == 18  # its lowest own opset
        why = (f"asked for opset {OLD_OPSET}, the default exporter writes opset 18 and tries ONNX's version "
               "converter, which has no adapter for this model: it logged 'Failed to convert' and kept opset 18. "
               f"Read the declared opset after every export; the legacy exporter writes opset {OLD_OPSET} itself "
               f"(dynamo=False, opset_version={OLD_OPSET})" if converter_failed else
               f"pass opset_version={OLD_OPSET}: the runtime loads opsets up to {OLD_OPSET}, and the newest one "
               "it loads is the one to use")
        raise Incorrect(f"`ex4_path` declares opset {declared}: {why}")
    spec = require_input_specs("ex4_path", model, count=1)[0]
    batch = spec.shape[0] if isinstance(spec.shape[0], int) else 3
    photos = np.ascontiguousarray(np.asarray(photo_batch, dtype=np.float32)[::-1, :, :, ::-1][:batch])
    got = run_learner_file("ex4_path", model, {spec.name: photos}, f"{batch} mirrored photos")[0]
    require_close("ex4_path", f"{batch} mirrored photos", _torch_logits(classifier, photos), got,
                  fix="export the trained classifier itself")
    require_type("ex4_changed", ex4_changed, set, frozenset, list, tuple)
    answer = {str(op) for op in ex4_changed}
    op_types = sorted({node.op_type for node in model.graph.node})
    expected = {op for op in op_types if onnx.defs.get_schema(op, OLD_OPSET).since_version !=
                onnx.defs.get_schema(op, NEW_OPSET).since_version}
    unknown = sorted(answer - set(op_types))
    if unknown:
        raise Incorrect(f"{unknown} are not op types of your opset-{OLD_OPSET} file; its op types are {op_types} "
                        "(read them from that file: labkit.op_counts(ex4_path), not from another export)")
    missing, extra = sorted(expected - answer), sorted(answer - expected)
    if missing or extra:
        parts = ([f"{len(missing)} op type(s) that changed are missing"] if missing else []) + \
                ([f"{extra} have the same version at opsets {OLD_OPSET} and {NEW_OPSET}"] if extra else [])
        raise Incorrect("; ".join(parts) + f": compare onnx.defs.get_schema(op, {OLD_OPSET}).since_version with "
                        f"get_schema(op, {NEW_OPSET}).since_version for each op type of your file")
    return (f"opset {OLD_OPSET}, ORT agrees with classifier on mirrored photos; {sorted(expected)} of its "
            f"{len(op_types)} op types are defined differently at opset {NEW_OPSET}")


q1, q2, q3, q4 = bind("01_alexnet_export", [
    Exercise(
        title="The top-3 of the mirrored photos",
        kind="warm-up",
        answers=["ex1_top3"],
        context=["classifier", "photo_batch", "photo_names"],
        check=_check_q1,
        hints=[
            "photo_batch[..., ::-1] mirrors every photo left to right (the last axis of NCHW is the width). "
            "Run it through classifier_sessions['legacy'] as section 6 ran photo_batch.",
            "np.argsort(-row)[:3] gives the indices of a row's three largest logits, best first; "
            "labels[k] (labels = imagenet.categories()) turns an index into its label.",
            "mirrored_logits = classifier_sessions['legacy'].run(['logits'], {'image': photo_batch[..., ::-1]})[0]; "
            "ex1_top3 = {name: [labels[k] for k in np.argsort(-row)[:3]] "
            "for name, row in zip(photo_names, mirrored_logits)}",
        ],
    ),
    Exercise(
        title="The trained classifier for photos of any size",
        kind="transfer",
        answers=["ex2_path", "ex2_logits"],
        context=["classifier", "photo_batch"],
        check=_check_q2,
        hints=[
            "Section 4 freed one axis, AlexNet's batch. A convolutional network that ends in a global average "
            "(EfficientNet does: F.adaptive_avg_pool2d(x, 1) at the end of its forward) can take any height and "
            "width too; it is the export that fixes them unless you say otherwise.",
            "dynamic_shapes takes one entry per dimension you free: {0: Dim('batch'), 2: Dim('height'), "
            "3: Dim('width')} with Dim = torch.export.Dim. Read the saved shape afterwards with labkit.input_specs: "
            "the default exporter fixes a dim silently when the model's code forces it.",
            "torch.onnx.export(classifier, (torch.from_numpy(photo_batch[:2]),), ex2_path, verbose=False, "
            "external_data=False, input_names=['image'], output_names=['logits'], dynamic_shapes=({0: "
            "Dim('batch'), 2: Dim('height'), 3: Dim('width')},)); then ex2_logits = ort.InferenceSession(ex2_path, "
            "providers=['CPUExecutionProvider']).run(['logits'], {'image': photo_batch[:3, :, 32:192, :]})[0]",
        ],
    ),
    Exercise(
        title="Another model's preprocessing recipe",
        kind="warm-up",
        answers=["ex3_preprocess"],
        check=_check_q3,
        hints=[
            "Print ResNet50_Weights.IMAGENET1K_V2.transforms() (from torchvision.models): only resize_size differs "
            "from section 5's transform (232 instead of 256); the crop, mean and std are the same.",
            "Section 5's resize_antialiased(image, height, width) resizes like torchvision in both directions. "
            "The new size: the shorter side becomes 232, the longer one int(232 * long / short). Then crop 224 "
            "at offsets round((size - 224) / 2), divide by 255, normalise with imagenet.MEAN / imagenet.STD.",
            "h, w = image.shape[:2]; size = (232, int(232 * w / h)) if h <= w else (int(232 * h / w), 232); "
            "resized = resize_antialiased(image, *size); then crop, scale, normalise, "
            "crop.transpose(2, 0, 1)[None].astype(np.float32).",
        ],
    ),
    Exercise(
        title="The classifier for a runtime that stops at opset 17",
        kind="transfer",
        answers=["ex4_path", "ex4_changed"],
        context=["classifier", "photo_batch"],
        check=_check_q4,
        hints=[
            "Export with opset_version=17, then read what the file declares (onnx.load(path).opset_import): "
            "section 2 showed that asking is not the same as getting.",
            "The default exporter writes opset 18 or newer and converts down with ONNX's version converter; for "
            "this network the converter has no adapter, logs 'Failed to convert' and keeps opset 18. The legacy "
            "exporter writes any opset up to 20 itself. Then look up each op type of *your* file with "
            "onnx.defs.get_schema(op, opset).since_version at 17 and at 20.",
            "torch.onnx.export(classifier, (torch.from_numpy(photo_batch[:2]),), ex4_path, dynamo=False, "
            "opset_version=17, input_names=['image'], output_names=['logits']); ex4_changed = {op for op in "
            "labkit.op_counts(ex4_path) if onnx.defs.get_schema(op, 17).since_version != "
            "onnx.defs.get_schema(op, 20).since_version}",
        ],
    ),
])
