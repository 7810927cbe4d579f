"""The `labkit` command: one subcommand per module, each providing `configure(parser)` and `main(args)`."""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). A lesson that needs a command adds one line here.
COMMANDS = {
    "doctor": ("labkit.doctor", "check the installed stack and name the fix for known problems"),
    "run": ("labkit.runner", "execute notebooks in order (--inplace refreshes committed outputs)"),
    "student-copy": ("labkit.student", "write student notebooks with solutions replaced by stubs"),
    "train-srcnn": ("labkit.train_srcnn", "train the kit's SRCNN (factors 2, 3, 4) and write data/srcnn_x234.pth"),
    "fetch-weights": ("labkit.imagenet", "download AlexNet's ImageNet weights into torch's hub cache (needs internet)"),
    "bench": ("labkit.bench", "time an ONNX model in ONNX Runtime at several batch sizes (median, p90, share of the fp32 peak)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labkit", description="onnx-labkit: lessons on PyTorch -> ONNX -> ONNX Runtime")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        escaped = help_text.replace("%", "%%")  # argparse formats help strings with %
        command = sub.add_parser(name, help=escaped, description=escaped)
        importlib.import_module(module).configure(command)
        command.set_defaults(module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return importlib.import_module(args.module).main(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"labkit {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
