"""Exercises of Lesson 01: the trained classifier in ORT (mirrored photos, a dynamic batch), a preprocessing recipe, opsets."""
from __future__ import annotations

import numpy as np
import onnx

from ..onnxfile import OnnxFile
from .checks import require_inputs, require_onnx_file, require_type
from .core import Exercise, Incorrect, bind

__all__ = ["q1", "q2", "q3", "q4"]

ATOL, RTOL = 1e-4, 1e-3  # labkit.compare's defaults, the tolerance every lesson check uses
RESIZE, CROP = 232, 224  # ResNet50_Weights.IMAGENET1K_V2.transforms(): the recipe exercise 2 asks for
OLD_OPSET, NEW_OPSET = 17, 20


def _torch_logits(model, batch: np.ndarray) -> np.ndarray:
    """The notebook's PyTorch model on `batch`: the truth the learner's ONNX file must match."""
    import torch

    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))).numpy()


def _agrees(expected: np.ndarray, actual: np.ndarray) -> bool:
    return expected.shape == actual.shape and bool(np.allclose(actual, expected, atol=ATOL, rtol=RTOL))


def _dim_text(dim) -> str:
    return str(dim.dim_value) if dim.HasField("dim_value") else (dim.dim_param or "?")


# --- Exercise 1: the top-3 of the mirrored photos, through ORT ------------------------------------------

def _top3(logits: np.ndarray, names) -> dict[str, list[str]]:
    from ..imagenet import categories

    labels = categories()
    return {name: [labels[k] for k in np.argsort(-row)[:3]] for name, row in zip(names, logits)}


def _check_q1(ex1_top3, classifier, photo_batch, photo_names) -> str:
    require_type("ex1_top3", ex1_top3, dict)
    names = list(photo_names)
    missing, extra = [n for n in names if n not in ex1_top3], [str(k) for k in ex1_top3 if k not in names]
    if missing or extra:
        raise Incorrect(f"`ex1_top3` should have one entry per photo, keyed by its name (photo_names); "
                        f"missing: {missing or 'none'}, unexpected: {extra or 'none'}")
    photo_batch = np.asarray(photo_batch, dtype=np.float32)
    mirrored = _top3(_torch_logits(classifier, photo_batch[..., ::-1]), names)
    unmirrored: dict[str, list[str]] = {}  # computed only to explain a wrong answer (torch is slow here)

    def as_they_are() -> dict[str, list[str]]:
        if not unmirrored:
            unmirrored.update(_top3(_torch_logits(classifier, photo_batch), names))
        return unmirrored

    for name in names:
        answer = ex1_top3[name]
        require_type(f"ex1_top3[{name!r}]", answer, list, tuple)
        if any(isinstance(item, (int, np.integer)) for item in answer):
            raise Incorrect(f"`ex1_top3[{name!r}]` holds class indices {list(answer)}: give the labels, "
                            "imagenet.categories()[k]")
        answer = [str(item) for item in answer]
        if answer == mirrored[name]:
            continue
        if answer == as_they_are()[name] != mirrored[name]:
            raise Incorrect(f"`ex1_top3[{name!r}]` is the top-3 of the photo as it is: mirror the batch first, "
                            "photo_batch[..., ::-1] (the last axis is the width)")
        if answer[::-1] == mirrored[name]:
            raise Incorrect(f"`ex1_top3[{name!r}]` is {answer}: best first, please (np.argsort(-logits)[:3])")
        raise Incorrect(f"`ex1_top3[{name!r}]` is {answer}, which is not the mirrored photo's top-3: run "
                        "photo_batch[..., ::-1] through the legacy export's session, then take the three "
                        "largest logits, best first")
    cat = f"; the mirrored cat is still {', '.join(mirrored['chelsea'])}" if "chelsea" in mirrored else ""
    return f"the top-3 of all {len(names)} mirrored photos, best first{cat}"


# --- Exercise 2: the trained classifier with a dynamic batch, on the default exporter ----------------

def _check_q2(ex2_path, ex2_logits, classifier, photo_batch) -> str:
    import onnxruntime as ort

    model = require_onnx_file("ex2_path", ex2_path)
    require_inputs(model, ["image"])
    outputs = [o.name for o in model.graph.output]
    if outputs != ["logits"]:
        raise Incorrect(f"the output should be named 'logits', found {outputs}: pass output_names=['logits']")
    dims = model.graph.input[0].type.tensor_type.shape.dim
    shape = [_dim_text(d) for d in dims]
    if len(dims) != 4 or shape[1:] != ["3", "224", "224"]:
        raise Incorrect(f"input 'image' should have shape [batch, 3, 224, 224], found [{', '.join(shape)}]: "
                        "export classifier with example photos such as photo_batch[:2]")
    if dims[0].HasField("dim_value"):
        raise Incorrect(f"the batch dimension of 'image' is fixed at {dims[0].dim_value} in the saved file: pass "
                        "dynamic_shapes=({0: torch.export.Dim('batch')},) to torch.onnx.export, then read the "
                        "saved shape again (labkit.input_specs)")
    session = ort.InferenceSession(str(ex2_path), providers=["CPUExecutionProvider"])
    photo_batch = np.asarray(photo_batch, dtype=np.float32)
    expected = _torch_logits(classifier, photo_batch[:5])  # one torch run; each photo's logits are its own
    for n in (1, 3, 5):
        got = session.run(["logits"], {"image": photo_batch[:n]})[0]
        if not _agrees(expected[:n], got):
            raise Incorrect(f"your file runs a batch of {n}, but its logits differ from classifier's: "
                            "export the trained classifier itself (not torch_model, not a copy with other weights)")
    require_type("ex2_logits", ex2_logits, np.ndarray)
    if ex2_logits.shape != (3, 1000):
        raise Incorrect(f"`ex2_logits` should hold the logits of the first three photos, shape (3, 1000); its shape "
                        f"is {ex2_logits.shape}: run photo_batch[:3] through your session and take its first output")
    if not _agrees(expected[:3], ex2_logits):
        raise Incorrect("`ex2_logits` is not what classifier computes for photo_batch[:3]: run exactly those "
                        "three photos through an ORT session on your file")
    return (f"input 'image' [{', '.join(shape)}], output 'logits'; ORT agrees with classifier on batches of 1, 3 "
            "and 5, and ex2_logits are the first three photos' logits")


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


def _check_q3(ex3_preprocess) -> str:
    from .. import imagenet

    if not callable(ex3_preprocess):
        raise Incorrect(f"`ex3_preprocess` should be a function image -> array, but it is a "
                        f"{type(ex3_preprocess).__name__}: define it with def ex3_preprocess(image): ...")
    images = _test_images()
    outputs, errors = {}, {}
    for name, image in images.items():
        ours = ex3_preprocess(image.copy())
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
        errors[name] = float(np.abs(ours - _torchvision_reference(image)).max())
    bad = {name: error for name, error in errors.items() if not error <= 1e-3}
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


# --- Exercise 4: which operators of the trained classifier change between opsets 17 and 20 ------------

def _op_types(path) -> list[str]:
    return sorted({node.op_type for node in OnnxFile.open(path).proto.graph.node})


def _check_q4(ex4_changed, classifier_default_path) -> str:
    require_type("ex4_changed", ex4_changed, set, frozenset, list, tuple)
    answer = {str(op) for op in ex4_changed}
    op_types = _op_types(classifier_default_path)
    expected = {op for op in op_types if onnx.defs.get_schema(op, OLD_OPSET).since_version !=
                onnx.defs.get_schema(op, NEW_OPSET).since_version}
    unknown = sorted(answer - set(op_types))
    if unknown:
        raise Incorrect(f"{unknown} are not op types of the classifier's default export; its op types are "
                        f"{op_types} (read them from the file: labkit.op_counts(classifier_default_path))")
    missing, extra = sorted(expected - answer), sorted(answer - expected)
    if missing or extra:
        parts = ([f"{len(missing)} op type(s) that changed are missing"] if missing else []) + \
                ([f"{extra} have the same version at opsets {OLD_OPSET} and {NEW_OPSET}"] if extra else [])
        raise Incorrect("; ".join(parts) + f": compare onnx.defs.get_schema(op, {OLD_OPSET}).since_version with "
                        f"get_schema(op, {NEW_OPSET}).since_version for each op type of the file")
    return (f"{sorted(expected)} are defined differently at opset {OLD_OPSET}; "
            f"{sorted(set(op_types) - expected)} are the same at both")


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
        title="A dynamic batch for the trained classifier",
        kind="transfer",
        answers=["ex2_path", "ex2_logits"],
        context=["classifier", "photo_batch"],
        check=_check_q2,
        hints=[
            "Section 4 made AlexNet's batch dynamic on the default exporter: dynamic_shapes=({0: batch},) with "
            "batch = torch.export.Dim('batch'). The same works for any model whose code does not fix the batch.",
            "torch.onnx.export(classifier, (torch.from_numpy(photo_batch[:2]),), ex2_path, verbose=False, "
            "external_data=False, input_names=['image'], output_names=['logits'], dynamic_shapes=...). "
            "Then read the saved shape with labkit.input_specs(ex2_path).",
            "ex2_logits = ort.InferenceSession(ex2_path, providers=['CPUExecutionProvider'])"
            ".run(['logits'], {'image': photo_batch[:3]})[0]",
        ],
    ),
    Exercise(
        title="Another model's preprocessing recipe",
        kind="transfer",
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
        title="Operator versions of the trained classifier",
        kind="transfer",
        answers=["ex4_changed"],
        context=["classifier_default_path"],
        check=_check_q4,
        hints=[
            "First the op types in the file: sorted(labkit.op_counts(classifier_default_path)).",
            "onnx.defs.get_schema(op, opset).since_version is the version of `op` in force at `opset` (section 2).",
            "ex4_changed = {op for op in op_types if onnx.defs.get_schema(op, 17).since_version != "
            "onnx.defs.get_schema(op, 20).since_version}",
        ],
    ),
])
