"""The `labkit` command: one subcommand per module in labkit/commands/ (`configure(parser)`, `main(args)`).

Building the parser imports only those command modules, which import only the standard library
at top, so `labkit doctor` starts on a stack whose onnx, numpy or torch is broken. No command
ever ends in a raw traceback: errors print one line (LABKIT_DEBUG=1 shows the traceback), exit 2;
Ctrl-C exits 130 (SIGTERM during `labkit run`, 143).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .childenv import telemetry_off

__all__ = ["COMMANDS", "build_parser", "main"]

# name -> one-line help; the module is labkit.commands.<name with '-' as '_'>.
COMMANDS = {
    "doctor": "check the installed stack and name the fix for known problems",
    "run": "execute lesson notebooks in order (--inplace saves their outputs when they pass)",
    "student-copy": "make the learner's copies in workspace/ (solutions stubbed, outputs cleared; edits kept)",
    "progress": "show, per lesson, which exercises your copies in workspace/ have checked Correct",
    "bench": "time an ONNX model in ONNX Runtime at several batch sizes (median, p90, share of the fp32 peak)",
    "fetch-weights": "download AlexNet's ImageNet weights into torch's hub cache (needs internet)",
    "train-srcnn": "train the kit's SRCNN (factors 2, 3, 4) into artifacts/train-srcnn/",
    "train-tinylm": "train Lesson 08's tiny byte-level language model into artifacts/train-tinylm/",
}


def _module(name: str):
    return importlib.import_module(f"labkit.commands.{name.replace('-', '_')}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labkit", description="onnx-labkit: lessons on PyTorch -> ONNX -> ONNX Runtime")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        escaped = help_text.replace("%", "%%")  # argparse formats help strings with %
        _module(name).configure(sub.add_parser(name, help=escaped, description=escaped))
    return parser


# Typography the kit prints, in ASCII for a terminal that cannot show it (LC_ALL=C, latin-1): nothing else is lost.
_ASCII = {"\u2014": "-", "\u2013": "-", "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
          "\u2026": "...", "\u00d7": "x", "\u2264": "<=", "\u2265": ">=", "\u2192": "->", "\u2248": "~"}


def _plain(error: UnicodeEncodeError) -> tuple[str, int]:
    text = error.object[error.start:error.end]
    return "".join(_ASCII.get(c, c.encode("ascii", "backslashreplace").decode()) for c in text), error.end


def _printable_streams() -> None:
    """Let stdout and stderr print any text in any locale: what the encoding lacks becomes ASCII, never an error."""
    import codecs

    codecs.register_error("labkit-plain", _plain)
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if encoding != "utf8" and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="labkit-plain")
            except (ValueError, OSError):  # a closed or detached stream: nothing to print to anyway
                pass


def main(argv: list[str] | None = None) -> int:
    telemetry_off()  # again, in case the caller's code removed it since `import labkit`: before any command imports ORT
    _printable_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    from .commands import print_error

    try:
        return _module(args.command).main(args)
    except KeyboardInterrupt as stop:
        message = str(stop) or "interrupted"
        print(f"labkit {args.command}: {message}", file=sys.stderr)
        return getattr(stop, "exit_code", 130)
    except BrokenPipeError:  # `labkit ... | head`: the reader left; nothing more to say
        sys.stderr.close()
        return 1
    except Exception as error:
        print_error(args.command, error)
        return 2


if __name__ == "__main__":
    sys.exit(main())
