"""`labkit doctor [--quick]`: check the installed stack; exit 1 when a check fails (the fix is under it)."""
from __future__ import annotations

import argparse

__all__ = ["configure", "main"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="skip the export round trip (about 5 s)")


def main(args: argparse.Namespace) -> int:
    from .. import doctor

    checks = doctor.run_checks(quick=args.quick)
    print(doctor.format_checks(checks))
    return 0 if all(c.ok for c in checks) else 1
