"""Check CloudFormation/SAM templates against policy/rules.py.

    python policy/check.py template.yaml [more.yaml ...] [--rule ID ...]

Prints one line per violation and exits 1 if there is any, 0 otherwise.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cfn_yaml  # noqa: E402
import rules  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("templates", nargs="+", type=Path)
    parser.add_argument("--rule", action="append", choices=sorted(rules.RULES), help="run only this rule (repeatable)")
    args = parser.parse_args(argv)
    failed = 0
    for path in args.templates:
        violations = rules.check(cfn_yaml.load(path), args.rule)
        for v in violations:
            print(f"{path}: {v}")
        if violations:
            failed += 1
        else:
            print(f"{path}: {len(args.rule or rules.RULES)} policy rules pass")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
