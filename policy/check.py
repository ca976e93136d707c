"""Check CloudFormation/SAM templates against policy/rules.py.

    python policy/check.py template.yaml [more.yaml ...] [--rule ID ...]

Prints one line per violation and exits 1 if there is any, 0 otherwise.

Templates are read with cfn-lint's own decoder (`cfnlint.decode`), the one
`cfn-lint` uses: short-form intrinsics (`!Ref X`, `!GetAtt A.B`) come back in
their long form (`{"Ref": "X"}`, `{"Fn::GetAtt": ["A", "B"]}`), so the rules
deal with one representation, and a template cfn-lint cannot parse is refused
with cfn-lint's message.

The rules are not cfn-lint custom rules (`--append-rules`): cfn-lint runs rules
on the template after the SAM transform, and these rules read what only the
SAM source has (function `Events`, `Globals`, SAM policy templates).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cfnlint.decode import decode, decode_str  # noqa: E402

import rules  # noqa: E402


def _plain(template: object, matches: list, source: str) -> dict:
    """cfn-lint's nodes (dict/str subclasses carrying line marks) as plain
    Python data, so templates compare, copy and dump like any mapping."""
    if matches or not isinstance(template, dict):
        errors = "; ".join(str(m) for m in matches) or "not a mapping at the top level"
        raise ValueError(f"{source}: cannot parse the template: {errors}")
    return json.loads(json.dumps(template))


def loads(text: str) -> dict:
    """A template from YAML or JSON text."""
    template, matches = decode_str(text)
    return _plain(template, matches, "<text>")


def load(path: str | Path) -> dict:
    """A template from a file."""
    template, matches = decode(str(path))
    return _plain(template, matches, str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("templates", nargs="+", type=Path)
    parser.add_argument("--rule", action="append", choices=sorted(rules.RULES), help="run only this rule (repeatable)")
    args = parser.parse_args(argv)
    failed = 0
    for path in args.templates:
        violations = rules.check(load(path), args.rule)
        for v in violations:
            print(f"{path}: {v}")
        if violations:
            failed += 1
        else:
            print(f"{path}: {len(args.rule or rules.RULES)} policy rules pass")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
