"""The `labkit` command line: every command listed, one-line errors instead of tracebacks, a doctor on a broken stack."""
import os
import subprocess
import sys

import pytest

from labkit import cli
from labkit.cli import main as cli_main


def test_without_a_command_it_prints_help_naming_every_command(capsys):
    assert cli_main([]) == 2
    out = capsys.readouterr().out
    assert all(name in out for name in cli.COMMANDS)


def test_a_percent_sign_in_a_commands_help_is_shown_as_written(monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "doctor", "checks 100% of the stack")
    assert cli_main([]) == 2
    assert "checks 100% of the stack" in capsys.readouterr().out


def test_every_command_module_imports_only_the_standard_library_at_top():
    script = ("import sys; import labkit.cli as c; c.build_parser(); "
              "print(sorted(m for m in ('numpy', 'onnx', 'onnxruntime', 'torch', 'nbformat', 'nbclient') "
              "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr


def test_a_usage_error_is_one_line_naming_the_fix(capsys):
    assert cli_main(["run", "99"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("labkit run: error: no notebook matches '99'; the lessons are: 00_")


def test_an_unexpected_error_shows_its_type_and_no_traceback(monkeypatch, capsys):
    def broken(args):
        raise RuntimeError("deep inside a library\nsecond line")

    monkeypatch.setattr("labkit.commands.doctor.main", broken)
    assert cli_main(["doctor"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("labkit doctor: error: RuntimeError: deep inside a library\n")
    assert "Traceback" not in err and "second line" not in err
    assert err.splitlines()[1] == "labkit doctor: run again with LABKIT_DEBUG=1 to see the traceback"


def test_labkit_debug_prints_the_traceback(monkeypatch, capsys):
    def broken(args):
        raise RuntimeError("deep inside a library")

    monkeypatch.setattr("labkit.commands.doctor.main", broken)
    monkeypatch.setenv("LABKIT_DEBUG", "1")
    assert cli_main(["doctor"]) == 2
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_ctrl_c_exits_130_without_a_traceback(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("labkit.commands.doctor.main", interrupted)
    assert cli_main(["doctor"]) == 130
    assert capsys.readouterr().err == "labkit doctor: interrupted\n"


def test_the_cli_turns_onnxruntime_telemetry_off(monkeypatch):
    monkeypatch.delenv("ORT_DISABLE_TELEMETRY", raising=False)
    monkeypatch.setattr("labkit.commands.doctor.main", lambda args: 0)
    assert cli_main(["doctor"]) == 0
    assert os.environ["ORT_DISABLE_TELEMETRY"] == "1"


def test_doctor_starts_and_names_the_fix_when_onnx_numpy_and_torch_do_not_import():
    broken = ("onnx", "numpy", "torch")
    script = (f"import sys; sys.modules.update(dict.fromkeys({broken!r}))\n"  # `import onnx` now raises ImportError
              "from labkit.cli import main\nsys.exit(main(['doctor', '--quick']))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    rows = [[part.strip() for part in line.split("|")] for line in result.stdout.splitlines()]
    for name in broken:  # each one failed with its fix, or was not checked because another broken one comes first
        row = next(i for i, cells in enumerate(rows) if len(cells) == 3 and cells[1] == name)
        status, detail = rows[row][0], rows[row][2]
        if status == "FAILED":
            assert f"import of {name} halted" in detail
            assert rows[row + 1][-1].startswith("fix: pip install -c constraints.txt") and rows[row + 1][-1].endswith(
                f" {name}")
        else:
            assert status == "SKIPPED" and detail.split("needs ")[-1] in broken, rows[row]
    summary = result.stdout.splitlines()[-1]
    assert summary.startswith("FAILED: ") and "numpy" in summary.split("; failed: ")[1].split(";")[0]


def _ascii_env(**extra):
    """A locale that cannot encode an em dash: LC_ALL=C with Python's UTF-8 mode off (or a latin-1 terminal)."""
    return {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": "", **extra}


@pytest.mark.parametrize("extra", [{}, {"PYTHONIOENCODING": "latin-1"}], ids=["C locale", "latin-1"])
def test_progress_prints_in_a_locale_that_cannot_encode_an_em_dash(tmp_path, extra):
    (tmp_path / "ws").mkdir()
    result = subprocess.run([sys.executable, "-m", "labkit.cli", "progress", "--workspace", str(tmp_path / "ws")],
                            capture_output=True, env=_ascii_env(**extra), timeout=120)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    out = result.stdout.decode("latin-1")
    assert out.splitlines()[0].split() == ["lesson", "exercise", "state", "detail"]
    assert " - " in out.splitlines()[1] and "exercises correct" in out


def test_what_the_encoding_lacks_becomes_ascii_not_an_error():
    cli._printable_streams()  # registers the error handler the streams use where they are not UTF-8
    assert "a — b × c ≤ d 🙂".encode("ascii", errors="labkit-plain") == b"a - b x c <= d \\U0001f642"
