"""Load a CloudFormation/SAM YAML template into plain Python data.

Short-form intrinsics (`!Ref X`, `!GetAtt A.B`, `!If [...]`, ...) become their
long form (`{"Ref": "X"}`, `{"Fn::GetAtt": ["A", "B"]}`, `{"Fn::If": [...]}`), the
shape CloudFormation itself uses, so rules only deal with one representation.
JSON templates load too (JSON is YAML). Dumping the loaded data back with
`yaml.safe_dump` gives an equivalent template, which the tests use for mutations.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_FN_TAGS = (
    "And", "Base64", "Cidr", "Equals", "FindInMap", "GetAZs", "GetAtt", "If",
    "ImportValue", "Join", "Length", "Not", "Or", "Select", "Split", "Sub",
    "ToJsonString", "Transform",
)


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that understands CloudFormation's `!Tag` shorthand."""


def _construct(node: yaml.Node, loader: yaml.SafeLoader) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


def _fn(name: str):
    key = f"Fn::{name}"

    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        value = _construct(node, loader)
        if name == "GetAtt" and isinstance(value, str):
            resource, _, attribute = value.partition(".")
            value = [resource, attribute]
        return {key: value}

    return construct


for _name in _FN_TAGS:
    CfnLoader.add_constructor(f"!{_name}", _fn(_name))
CfnLoader.add_constructor("!Ref", lambda loader, node: {"Ref": _construct(node, loader)})
CfnLoader.add_constructor(
    "!Condition", lambda loader, node: {"Condition": _construct(node, loader)}
)


def loads(text: str) -> dict:
    data = yaml.load(text, Loader=CfnLoader)  # noqa: S506 - CfnLoader is a SafeLoader
    if not isinstance(data, dict):
        raise ValueError("a template is a mapping at the top level")
    return data


def load(path: str | Path) -> dict:
    return loads(Path(path).read_text(encoding="utf-8"))
