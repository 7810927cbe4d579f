"""The environment the kit runs in (labkit.childenv decides it): the lock, `make setup` on machines unlike this one,
offline ONNX Runtime, and kernels and children that do not inherit the caller's settings.

- ONNX Runtime's telemetry is off on every route to the kit: `import labkit` sets ORT_DISABLE_TELEMETRY=1 (probed in
  a Python that has no .pth file, as a conda or pip environment made without make), and `make setup` writes a `.pth`
  file that sets it in every Python of its venv. No DNS look-up, nothing written under ~/.cache/Microsoft. Each probe
  runs with HOME in a temporary folder, so the user's own cache is never touched, and each has a control run (the
  same Python, labkit not imported) that shows the probe does see telemetry.
- `kernel_env()` gives a kernel (nbval's, `labkit run`'s) and `clean_env()` a child pytest (Lesson 00's inner nbval
  run) the same output whatever the outer run was started with (a CI's PYTEST_ADDOPTS=--junitxml=..., COLUMNS).
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import nbformat
import pytest

from labkit import lessons
from labkit.childenv import clean_env, kernel_env
from labkit.report import strip_ansi

PTH_NAME = "labkit-offline.pth"
STRACE = shutil.which("strace")

# One ONNX Runtime session, as a lesson makes one; the model is built in memory (no file, no exporter).
SESSION_SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    print(session.run(None, {"x": np.array([-1.0], dtype=np.float32)})[0].tolist())
    time.sleep(float(sys.argv[1]))  # ONNX Runtime's uploader looks its host up a few seconds after the session
""")
# What a telemetry upload attempt and the telemetry database look like in `strace -f` output.
DNS_CALL = re.compile(r"\b(connect|sendto|sendmsg|sendmmsg)\(\d+, .*htons\(53\)")
TELEMETRY_DIR = ".cache/Microsoft"


# ONNX Runtime turns its telemetry off by itself when one of these says it runs in a CI (the names are in
# libonnxruntime.so; CI=true alone silences it). A probe run inside a CI must not inherit them, or the control
# sees no telemetry and the kit's run proves nothing.
CI_MARKERS = ("CI", "TF_BUILD", "GITHUB_ACTIONS", "GITLAB_CI", "CIRCLECI", "TRAVIS", "JENKINS_URL",
              "CODEBUILD_BUILD_ID", "BUILDKITE", "TEAMCITY_VERSION", "APPVEYOR", "BITBUCKET_BUILD_NUMBER")


def _start_session(home: Path, seconds: float, *, import_labkit: bool, trace: Path | None = None) -> subprocess.Popen:
    """The session script in a Python without site's .pth files (`-S`: no `make setup` here, as on the conda or pip
    route), HOME in a temporary folder, no ORT_DISABLE_TELEMETRY and no CI marker: telemetry is off only if labkit,
    imported first as `import_labkit` says, turns it off."""
    home.mkdir(parents=True, exist_ok=True)
    script = ("import labkit\n" if import_labkit else "") + SESSION_SCRIPT
    command = [sys.executable, "-S", "-c", script, str(seconds)]
    if trace is not None:
        command = [STRACE, "-f", "-qq", "-s", "64", "-e", "trace=%network,openat", "-o", str(trace), *command]
    site = os.pathsep.join(dict.fromkeys([str(ROOT), sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]))
    env = clean_env(HOME=str(home), PYTHONPATH=site, ORT_DISABLE_TELEMETRY=None, **dict.fromkeys(CI_MARKERS))
    return subprocess.Popen(command, cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, f"the probe failed:\n{err[-3000:]}"
    assert out.strip() == "[0.0]", out
    return out


# --- the installed set is the lock -------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
# What the lock leaves out on purpose although an installed package declares it (constraints.txt says why).
LEFT_OUT = {"nvidia-cusolver", "nvidia-nvjitlink", "cuda-bindings", "cuda-pathfinder", "nvidia-cuda-cccl",
            "nvidia-nvtx", "cuda-toolkit", "rfc3987-syntax", "lark"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock(name: str = "constraints.txt") -> dict[str, str]:
    """A lock file as {canonical name: version}; constraints.txt is what `make setup` installs."""
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[_canonical(name)] = version.strip()
    return pins


def test_every_pin_of_the_lock_is_installed_at_its_version():
    from importlib.metadata import PackageNotFoundError, version

    wrong = {}
    for name, pinned in _lock().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = None
        if installed != pinned:
            wrong[name] = f"{installed or 'not installed'} (pinned {pinned})"
    assert not wrong, f"the venv is not the lock: {wrong}; run `make setup`"


def test_the_lock_is_complete():
    """`pip install --no-deps` installs only what is listed: nothing installed may need a package that is missing,
    except the ones left out on purpose (constraints.txt says why): CUDA-only ones that torch and the nvidia-*
    libraries declare, and the slow-to-import iri checker an extra of jsonschema asks for."""
    assert not LEFT_OUT & set(_lock()), "a left-out package is pinned"
    check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    problems = []
    for line in check.stdout.splitlines():
        found = re.match(r"(\S+) \S+ requires ([A-Za-z0-9_.\-]+)", line)
        if line.startswith("No broken requirements"):
            continue
        if found and _canonical(found[2]) in LEFT_OUT:
            continue
        problems.append(line)
    assert not problems, "\n".join(problems)


def test_the_browser_extra_is_pinned_in_its_own_lock_and_only_there():
    """`make test-lab` installs constraints-browser.txt on top of constraints.txt: two files, no section markers."""
    import tomllib

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["browser"]
    names = {_canonical(re.match(r"[A-Za-z0-9_.\-]+", requirement)[0]) for requirement in extra}
    browser = _lock("constraints-browser.txt")
    assert names <= set(browser), f"pin {names - set(browser)} in constraints-browser.txt"
    assert not set(browser) & set(_lock()), "a package pinned in both locks"


# --- make setup, on machines unlike this one ---------------------------------------------------------------------

MAKE = shutil.which("make")
needs_make = pytest.mark.skipif(MAKE is None, reason="make not installed")


def _checkout_with_a_space(tmp_path: Path) -> Path:
    """The files `make setup` reads, in a folder whose path has a space."""
    folder = tmp_path / "my lessons"
    folder.mkdir()
    for name in ("Makefile", "pyproject.toml", "constraints.txt", "constraints-browser.txt"):
        shutil.copy(ROOT / name, folder / name)
    return folder


@needs_make
def test_make_setup_on_an_older_python_stops_with_a_sentence_naming_the_fix(tmp_path):
    folder = _checkout_with_a_space(tmp_path)
    python310 = folder / "python3.10"
    python310.write_text("#!/bin/sh\necho 3.10\n")  # answers the Makefile's version question as Python 3.10 would
    python310.chmod(0o755)
    run = subprocess.run([MAKE, "setup", f"PYTHON={python310}", "VENV=venv"], cwd=folder, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode != 0
    assert (f"onnx-labkit needs Python 3.11 to 3.13 (torch 2.15 and onnxruntime 1.32 have no wheels for other "
            f"versions), and {python310} is Python 3.10: run make again with PYTHON=python3.11") in run.stderr
    assert not (folder / "venv").exists(), "no venv may be made with a Python the kit cannot use"


@needs_make
def test_make_setup_from_a_wheelhouse_passes_each_path_as_one_argument_where_the_path_has_a_space(tmp_path):
    """`make -n` prints the commands; each --find-links, -r and -c argument must be one shell word, a real path."""
    folder = _checkout_with_a_space(tmp_path)
    (folder / "wheelhouse").mkdir()
    (folder / "wheelhouse" / "demo-1.0-py3-none-any.whl").touch()
    printed = subprocess.run([MAKE, "-n", "setup", "test-lab"], cwd=folder, capture_output=True, text=True,
                             timeout=60, check=True).stdout
    installs = [shlex.split(line) for line in printed.splitlines() if " install " in line]
    assert len(installs) == 4, printed  # uv, the lock, the kit, the browser lock
    for words in installs:
        for flag, value in zip(words, words[1:]):
            if flag in ("--find-links", "-r", "-c"):
                assert (folder / value).exists(), f"{flag} {value!r} is not one path: {shlex.join(words)}"
    assert sum("--find-links" in words for words in installs) == 3, printed


# --- ONNX Runtime telemetry --------------------------------------------------------------------------------------


# A venv `make setup` made (it touches this stamp last): it must have the .pth; other routes have none.
made_by_make_setup = pytest.mark.skipif(not (Path(sys.prefix) / ".labkit-installed").exists(),
                                        reason="this environment was not made by `make setup`, which writes the .pth")


@made_by_make_setup
def test_every_python_of_the_venv_turns_ort_telemetry_off():
    """`make setup` wrote the .pth file, so kernels (nbval's, `labkit run`'s, JupyterLab's) and the CLI get the flag."""
    pth = Path(sysconfig.get_path("purelib")) / PTH_NAME
    assert pth.is_file(), f"{pth} is missing: run `make setup` (it writes it), or set ORT_DISABLE_TELEMETRY=1 yourself"
    env = clean_env(ORT_DISABLE_TELEMETRY=None)
    probe = "import os; print(os.environ.get('ORT_DISABLE_TELEMETRY'))"
    fresh = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert fresh.stdout.strip() == "1", fresh.stdout + fresh.stderr
    # A person who wants telemetry on can still say so: the .pth only sets a default.
    chosen = subprocess.run([sys.executable, "-c", probe], env={**env, "ORT_DISABLE_TELEMETRY": "0"},
                            capture_output=True, text=True, timeout=60)
    assert chosen.stdout.strip() == "0", chosen.stdout + chosen.stderr


@made_by_make_setup
def test_a_kernel_started_from_the_venvs_kernelspec_has_telemetry_off(monkeypatch):
    """The kernel JupyterLab (`make lab`) and `labkit run` start: the venv's `python3` kernelspec, not this process."""
    import nbclient

    monkeypatch.delenv("ORT_DISABLE_TELEMETRY", raising=False)  # the kernel must get it from the venv, not from us
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os\nprint(os.environ.get('ORT_DISABLE_TELEMETRY'))")])
    nbclient.NotebookClient(notebook, kernel_name="python3", timeout=120).execute()
    assert notebook.cells[0].outputs[0]["text"] == "1\n"


def test_an_ort_session_after_import_labkit_writes_nothing_under_the_users_cache_on_every_route(tmp_path):
    """No .pth (`python -S`): importing labkit first is enough; the control (labkit not imported) writes at once."""
    kit = _start_session(tmp_path / "kit-home", seconds=0, import_labkit=True)
    control = _start_session(tmp_path / "control-home", seconds=0, import_labkit=False)
    _finish(kit)
    _finish(control)
    written = sorted(p.relative_to(tmp_path / "control-home").as_posix()
                     for p in (tmp_path / "control-home").rglob("*") if p.is_file())
    assert any(name.startswith(TELEMETRY_DIR) and name.endswith(".db") for name in written), (
        f"the control run (labkit not imported) wrote no telemetry database, so this probe proves nothing (a CI marker "
        f"not in CI_MARKERS?): {written}")
    assert not (tmp_path / "kit-home" / TELEMETRY_DIR).exists(), sorted(
        p.as_posix() for p in (tmp_path / "kit-home").rglob("*"))


@pytest.mark.slow
@pytest.mark.skipif(STRACE is None, reason="strace not installed (Debian: apt-get install -y strace); "
                                           "this test traces the session's system calls to see DNS look-ups")
def test_an_ort_session_makes_no_dns_look_up(tmp_path):
    """strace both runs for 12 s (no .pth, as above): the control looks a host up within about 9 s; the kit's never."""
    kit_trace, control_trace = tmp_path / "kit.strace", tmp_path / "control.strace"
    kit = _start_session(tmp_path / "kit-home", seconds=12, import_labkit=True, trace=kit_trace)
    control = _start_session(tmp_path / "control-home", seconds=12, import_labkit=False, trace=control_trace)
    _finish(kit)
    _finish(control)
    control_calls = [line for line in control_trace.read_text().splitlines() if DNS_CALL.search(line)]
    if not control_calls:
        pytest.fail("the control run (labkit not imported) made no DNS look-up within 12 s, so this probe proves "
                    "nothing; has ONNX Runtime changed how it uploads telemetry, or does it see a CI marker not in "
                    "CI_MARKERS?")
    kit_lines = kit_trace.read_text().splitlines()
    assert not [line for line in kit_lines if DNS_CALL.search(line)], "a DNS look-up with telemetry off"
    assert not [line for line in kit_lines if TELEMETRY_DIR in line], "a file under ~/.cache/Microsoft was opened"


# --- children that must not inherit the caller's run ------------------------------------------------------------

DRIFT_SAVED = "5\n"
LESSON_00_SECTION = """\
Cell 0: Cell outputs differ

Input:
print(2 + 2)

Traceback:
 mismatch 'stdout'

 assert reference_output == test_output failed:

  '5\\n' == '4\\n'
  
  - 4
  + 5"""
HOSTILE = {"CI": "true", "COLUMNS": "40", "NO_COLOR": "1", "PYTHONWARNINGS": "error"}


def _write_drift_notebooks(folder: Path) -> None:
    """Lesson 00's demo (`print(2 + 2)` saved as 5) and one with a long diff (pytest shortens it, except on CI)."""
    short = nbformat.v4.new_code_cell("print(2 + 2)", execution_count=1,
                                      outputs=[nbformat.v4.new_output("stream", name="stdout", text=DRIFT_SAVED)])
    long = nbformat.v4.new_code_cell("for i in range(40):\n    print(i)", execution_count=1, outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="".join(f"{i + 1}\n" for i in range(40)))])
    for name, cell in [("drift.ipynb", short), ("drift_long.ipynb", long)]:
        notebook = nbformat.v4.new_notebook(cells=[cell])
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(notebook, folder / name)
    (folder / "pytest.ini").write_text("[pytest]\n")  # as Lesson 00: the kit's own settings stay out


def _inner_nbval(folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env", "-p", "no:cacheprovider",
                           "drift_long.ipynb", "drift.ipynb"], cwd=folder, capture_output=True, text=True, env=env,
                          timeout=300)


def _lesson_00_section(report: str) -> str:
    """The part of the report Lesson 00 prints: from its cell's heading to the next ===== (or the next notebook's ____)."""
    report = strip_ansi(report)
    start = report.index("Cell 0: Cell outputs differ", report.index(" drift.ipynb::Cell 0 "))
    end = min(i for i in (report.find("=====", start), report.find("_____", start)) if i > 0)
    return report[start:end].rstrip()


def test_clean_env_leaves_out_what_changes_a_childs_output(monkeypatch):
    for name, value in {**HOSTILE, "PYTEST_ADDOPTS": "-x", "PYTEST_PLUGINS": "p", "LINES": "5", "FORCE_COLOR": "1",
                        "PY_COLORS": "1", "CLICOLOR": "1", "CLICOLOR_FORCE": "1", "BUILD_NUMBER": "7",
                        "LANGUAGE": "de", "LC_MESSAGES": "de_DE.UTF-8", "TERM": "xterm-color",
                        "KEEP_ME": "yes"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ORT_DISABLE_TELEMETRY", raising=False)
    env = clean_env()
    assert not [name for name in env if name.startswith(("PYTEST_", "CLICOLOR", "LC_MESSAGES"))]
    for name in [*HOSTILE, "LINES", "FORCE_COLOR", "PY_COLORS", "BUILD_NUMBER", "LANGUAGE"]:
        assert name not in env, name
    assert (env["TERM"], env["LC_ALL"], env["LANG"], env["ORT_DISABLE_TELEMETRY"]) == ("dumb", "C.UTF-8", "C.UTF-8", "1")
    assert env["KEEP_ME"] == "yes" and env["PATH"] == os.environ["PATH"]
    assert clean_env(KEEP_ME=None, EXTRA="1")["EXTRA"] == "1" and "KEEP_ME" not in clean_env(KEEP_ME=None)
    assert os.environ["PYTEST_ADDOPTS"] == "-x", "clean_env must not change this process's environment"


@pytest.mark.slow
def test_lesson_00_inner_pytest_ignores_the_callers_pytest_settings(tmp_path, monkeypatch):
    """A CI's `PYTEST_ADDOPTS=--junitxml=...`, CI=true and a narrow COLUMNS change the inner run; clean_env undoes it.

    The control run (the caller's environment passed on as it is) shows each variable does change the output, so
    the clean run's equality is not an accident.
    """
    _write_drift_notebooks(tmp_path)
    junit = tmp_path / "inner-junit.xml"
    hostile = {**os.environ, **HOSTILE, "PYTEST_ADDOPTS": f"--junitxml={junit}"}
    hostile.pop("PYTHONWARNINGS")  # with it, the control run dies at start-up on a DeprecationWarning
    control = _inner_nbval(tmp_path, hostile)
    assert junit.exists() and "generated xml file" in _lesson_00_section(control.stdout)
    assert "Full output truncated" not in strip_ansi(control.stdout), "CI=true should show the whole long diff"
    junit.unlink()

    for name, value in {**HOSTILE, "PYTEST_ADDOPTS": f"--junitxml={junit}"}.items():
        monkeypatch.setenv(name, value)
    clean = _inner_nbval(tmp_path, clean_env())
    assert clean.returncode == 1, clean.stdout[-2000:] + clean.stderr[-2000:]
    assert _lesson_00_section(clean.stdout) == LESSON_00_SECTION
    assert "Full output truncated" in strip_ansi(clean.stdout), "clean_env should drop CI: the long diff is shortened"
    assert not junit.exists(), "the inner run wrote the outer run's JUnit file"


def test_kernel_env_leaves_out_what_changes_a_kernels_output_and_keeps_the_rest(monkeypatch):
    for name, value in {**HOSTILE, "PYTEST_ADDOPTS": "-x", "PYTEST_PLUGINS": "p", "LINES": "5", "FORCE_COLOR": "1",
                        "PY_COLORS": "1", "CLICOLOR_FORCE": "1", "LANGUAGE": "de", "LC_MESSAGES": "de_DE.UTF-8",
                        "PYTEST_XDIST_WORKER": "gw0", "KEEP_ME": "yes"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ORT_DISABLE_TELEMETRY", raising=False)
    env = kernel_env()
    for name in ["COLUMNS", "NO_COLOR", "PYTHONWARNINGS", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "LINES", "FORCE_COLOR",
                 "PY_COLORS", "CLICOLOR_FORCE", "LANGUAGE", "LC_MESSAGES"]:
        assert name not in env, name
    assert (env["LC_ALL"], env["LANG"], env["ORT_DISABLE_TELEMETRY"]) == ("C.UTF-8", "C.UTF-8", "1")
    # CI stays, so the outer run's own report shows full diffs on a CI; xdist's worker name stays for its workers.
    assert (env["CI"], env["PYTEST_XDIST_WORKER"], env["KEEP_ME"]) == ("true", "gw0", "yes")
    assert kernel_env(ORT_DISABLE_TELEMETRY="0")["ORT_DISABLE_TELEMETRY"] == "0", "a caller may choose telemetry"
    assert os.environ["COLUMNS"] == "40" and "ORT_DISABLE_TELEMETRY" not in os.environ, "os.environ is not changed"


def test_labkit_run_starts_its_kernel_in_kernel_env(tmp_path, monkeypatch):
    """`labkit run` (and `make refresh`, which saves what is committed) gives its kernel what nbval's kernels get."""
    for name, value in {**HOSTILE, "LANGUAGE": "de"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ORT_DISABLE_TELEMETRY", raising=False)
    names = ["COLUMNS", "NO_COLOR", "PYTHONWARNINGS", "LANGUAGE", "LC_ALL", "ORT_DISABLE_TELEMETRY"]
    path = tmp_path / "00_env.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        f"import os\nprint([os.environ.get(name) for name in {names!r}])")]), path)
    assert lessons.run_notebook(path, inplace=True, timeout=120).ok
    printed = nbformat.read(path, as_version=4).cells[0].outputs[0]["text"]
    assert printed == "[None, None, None, None, 'C.UTF-8', '1']\n"
