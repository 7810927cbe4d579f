"""labkit run and the command line: executes notebooks, reports failures, clear usage errors."""
import nbformat
import pytest

from labkit import runner
from labkit.cli import main as cli_main


def _notebook(path, *sources):
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources]), path)
    return path


def test_run_inplace_saves_outputs_of_a_passing_notebook(tmp_path):
    path = _notebook(tmp_path / "00_ok.ipynb", "print(6 * 7)")
    result = runner.run_notebook(path, inplace=True, timeout=60)
    assert result.status == "ok"
    cell = nbformat.read(path, as_version=4).cells[0]
    assert cell.execution_count == 1 and cell.outputs[0]["text"] == "42\n"


def test_a_failing_notebook_is_reported_and_left_untouched(tmp_path):
    path = _notebook(tmp_path / "00_bad.ipynb", "raise ValueError('lesson broke')")
    before = path.read_text()
    result = runner.run_notebook(path, inplace=True, timeout=60)
    assert result.status == "FAILED"
    assert "ValueError" in result.error and "lesson broke" in result.error
    assert path.read_text() == before


def test_summary_table_counts_passes_and_failures(tmp_path):
    results = [runner.NotebookResult(tmp_path / "01_a.ipynb", "ok", 1.25),
               runner.NotebookResult(tmp_path / "02_b.ipynb", "FAILED", 2.0, "ValueError: x")]
    lines = runner.format_results(results).splitlines()
    assert lines[0].split() == ["notebook", "status", "seconds"]
    assert "-> ValueError: x" in lines[4]
    assert lines[-1] == "1 passed, 1 failed"


def test_find_notebooks_lists_the_lessons_in_order():
    names = [p.name for p in runner.find_notebooks()]
    assert names == sorted(names) and names[0].startswith("00_")


def test_unknown_notebook_prefix_lists_the_lessons():
    with pytest.raises(FileNotFoundError, match="no notebook matches '99'; the lessons are: 00_"):
        runner.find_notebooks(["99"])


def test_cli_reports_bad_arguments_without_a_traceback(capsys):
    assert cli_main(["run", "99"]) == 2
    assert capsys.readouterr().err.startswith("labkit run: error: no notebook matches '99'")


def test_cli_without_a_command_prints_help(capsys):
    assert cli_main([]) == 2
    assert "doctor" in capsys.readouterr().out


def test_every_command_appears_in_the_help_even_with_percent_signs(capsys):
    from labkit.cli import COMMANDS

    assert cli_main([]) == 2
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out
