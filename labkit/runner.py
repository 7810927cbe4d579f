"""`labkit run`: execute notebooks in order with nbclient, with progress and a summary table."""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .paths import display_path, repo_root

__all__ = ["NotebookResult", "find_notebooks", "run_notebook", "run_notebooks"]


@dataclass(frozen=True)
class NotebookResult:
    """How one notebook ran: 'ok' or 'FAILED', seconds, and the first line of the error."""

    path: Path
    status: str
    seconds: float
    error: str = ""


def find_notebooks(names: list[str] | None = None) -> list[Path]:
    """The lesson notebooks in order; `names` may be paths or prefixes such as '01' or '01_alexnet'."""
    folder = repo_root() / "notebooks"
    every = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return every
    chosen = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.is_file():
            chosen.append(path.resolve())
            continue
        matches = [p for p in every if p.name.startswith(name)]
        if not matches:
            listing = ", ".join(p.stem for p in every)
            raise FileNotFoundError(f"no notebook matches {name!r}; the lessons are: {listing}")
        chosen.extend(matches)
    return chosen


def _kernel_manager():
    """A kernel manager that starts this Python (the kit's environment), whatever kernels are installed."""
    from jupyter_client.manager import KernelManager

    manager = KernelManager(kernel_name="python3")
    manager.kernel_spec.argv[0] = sys.executable
    return manager


def run_notebook(path: Path, *, inplace: bool = False, timeout: int = 600) -> NotebookResult:
    """Execute one notebook in its own folder; with `inplace`, save the fresh outputs when it succeeds."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, km=_kernel_manager(), timeout=timeout, record_timing=False, store_widget_state=False,
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError) as error:
        lines = [line for line in str(error).splitlines() if line.strip()]
        summary = next((line for line in reversed(lines) if "Error" in line or "Exception" in line),
                       lines[-1] if lines else type(error).__name__)
        return NotebookResult(path, "FAILED", time.perf_counter() - start, summary.strip()[:160])
    seconds = time.perf_counter() - start
    if inplace:
        notebook.metadata.pop("widgets", None)  # live widget state is meaningless once the kernel is gone
        nbformat.write(notebook, path)
    return NotebookResult(path, "ok", seconds)


def run_notebooks(paths: list[Path], *, inplace: bool = False, timeout: int = 600) -> list[NotebookResult]:
    """Run notebooks one after another with a progress bar; returns one result per notebook."""
    from tqdm.auto import tqdm

    results = []
    with tqdm(paths, unit="notebook", file=sys.stderr) as bar:
        for path in bar:
            bar.set_postfix_str(path.stem)
            results.append(run_notebook(path, inplace=inplace, timeout=timeout))
    return results


def format_results(results: list[NotebookResult]) -> str:
    """An aligned table: notebook, status, seconds, and the error for failures."""
    width = max([len("notebook")] + [len(display_path(r.path)) for r in results])
    lines = [f"{'notebook':<{width}}  status  seconds", f"{'-' * width}  ------  -------"]
    for r in results:
        lines.append(f"{display_path(r.path):<{width}}  {r.status:<6}  {r.seconds:7.1f}")
        if r.error:
            lines.append(f"{'':<{width}}  -> {r.error}")
    failed = sum(r.status != "ok" for r in results)
    lines.append(f"{len(results) - failed} passed, {failed} failed")
    return "\n".join(lines)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebooks", nargs="*", help="notebook paths or prefixes such as 01 (default: all, in order)")
    parser.add_argument("--inplace", action="store_true", help="save fresh outputs into the notebooks (for committing)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell (default 600)")


def main(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        raise ValueError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    results = run_notebooks(find_notebooks(args.notebooks), inplace=args.inplace, timeout=args.timeout)
    print(format_results(results))
    return 0 if all(r.status == "ok" for r in results) else 1
