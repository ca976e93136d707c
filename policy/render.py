"""The template for one set of parameter values, as CloudFormation would see it.

    render(t, {"CreateUserPool": "false", "JwtIssuer": "https://..."}) -> dict

`render` evaluates the template's Conditions with the parameters' defaults and
the given overrides, drops resources and outputs whose Condition is false and
replaces every `Fn::If` with its chosen branch (`AWS::NoValue` removed). Other
intrinsics (`Ref`, `Fn::Sub`, ...) stay as they are, so the rules in rules.py
can run on the result: the tests run them on every sign-in mode, not only on
the template with both branches of every `Fn::If` at once.

`resolve` goes further and turns an expression into a plain value, with sample
values for resources and pseudo parameters (what smoke_bootstrap.py gives the
function as its environment).
"""
from __future__ import annotations

import copy
import re
from typing import Any, Mapping

NO_VALUE = {"Ref": "AWS::NoValue"}
_DROP = object()

PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "chime-onboard",
    "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/chime-onboard/"
                    "51af3dc0-da77-11e4-872e-1234567db123",
}


def parameters(t: dict, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Parameter values: defaults, then overrides. CommaDelimitedList values are lists."""
    values: dict[str, Any] = {}
    for name, spec in (t.get("Parameters") or {}).items():
        value = (overrides or {}).get(name, spec.get("Default"))
        if spec.get("Type") == "CommaDelimitedList" and isinstance(value, str):
            value = [v.strip() for v in value.split(",")]
        values[name] = value
    for name, value in (overrides or {}).items():
        values.setdefault(name, value)
    return values


class Renderer:
    def __init__(self, t: dict, overrides: Mapping[str, Any] | None = None,
                 samples: Mapping[str, str] | None = None):
        self.t = t
        self.params = parameters(t, overrides)
        self.samples = dict(samples or {})
        self._conditions: dict[str, bool] = {}

    # ------------------------------------------------------------ conditions
    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self._cond_value((self.t.get("Conditions") or {})[name]))
        return self._conditions[name]

    def _cond_value(self, e: Any) -> Any:
        if isinstance(e, dict) and len(e) == 1:
            (k, v), = e.items()
            if k == "Condition":
                return self.condition(v)
            if k == "Fn::Equals":
                a, b = (self.resolve(x) for x in v)
                return _text(a) == _text(b)
            if k == "Fn::Not":
                return not self._cond_value(v[0])
            if k == "Fn::And":
                return all(self._cond_value(x) for x in v)
            if k == "Fn::Or":
                return any(self._cond_value(x) for x in v)
        return self.resolve(e)

    # ------------------------------------------------------------ render
    def choose(self, e: Any) -> Any:
        """`e` with every Fn::If decided and AWS::NoValue dropped."""
        if isinstance(e, dict):
            if len(e) == 1 and "Fn::If" in e:
                name, yes, no = e["Fn::If"]
                return self.choose(yes if self.condition(name) else no)
            if e == NO_VALUE:
                return _DROP
            out = {}
            for k, v in e.items():
                c = self.choose(v)
                if c is not _DROP:
                    out[k] = c
            return out
        if isinstance(e, list):
            return [c for c in (self.choose(x) for x in e) if c is not _DROP]
        return e

    def render(self) -> dict:
        t = copy.deepcopy(self.t)
        for section in ("Resources", "Outputs"):
            kept = {}
            for lid, item in (t.get(section) or {}).items():
                cond = item.get("Condition") if isinstance(item, dict) else None
                if cond is None or self.condition(cond):
                    kept[lid] = self.choose(item)
            t[section] = kept
        return t

    # ------------------------------------------------------------ resolve
    def resolve(self, e: Any) -> Any:
        """A plain value (str, number, bool, list) for an expression."""
        if isinstance(e, list):
            return [self.resolve(x) for x in e if x != NO_VALUE]
        if not (isinstance(e, dict) and len(e) == 1):
            return e
        (k, v), = e.items()
        if k == "Ref":
            if v == "AWS::NoValue":
                return None
            if v in self.params:
                return self.params[v]
            if v in PSEUDO:
                return PSEUDO[v]
            return self.samples.get(v, f"{v}-EXAMPLE")
        if k == "Fn::GetAtt":
            lid, att = v.split(".", 1) if isinstance(v, str) else v
            return self.samples.get(f"{lid}.{att}", f"{lid}-{att}-EXAMPLE")
        if k == "Fn::If":
            return self.resolve(v[1] if self.condition(v[0]) else v[2])
        if k == "Fn::Sub":
            text, names = (v, {}) if isinstance(v, str) else (v[0], v[1])

            def sub(m: re.Match) -> str:
                name = m.group(1)
                if name in names:
                    return _text(self.resolve(names[name]))
                if "." in name and name.split(".", 1)[0] not in self.params:
                    return _text(self.resolve({"Fn::GetAtt": name.split(".", 1)}))
                return _text(self.resolve({"Ref": name}))
            return re.sub(r"\$\{([^!}]+)\}", sub, text)
        if k == "Fn::Join":
            sep, items = v
            items = self.resolve(items)
            return sep.join(_text(self.resolve(x)) for x in items)
        if k == "Fn::Split":
            sep, text = v
            return _text(self.resolve(text)).split(sep)
        if k == "Fn::Select":
            index, items = v
            return self.resolve(items)[int(self.resolve(index))]
        if k in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition"):
            return self._cond_value(e)
        return e


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    return "" if value is None else str(value)


def render(t: dict, overrides: Mapping[str, Any] | None = None) -> dict:
    """The template as deployed with these parameter values (see the module doc)."""
    return Renderer(t, overrides).render()


def resolve(t: dict, expr: Any, overrides: Mapping[str, Any] | None = None,
            samples: Mapping[str, str] | None = None) -> Any:
    """`expr` as a plain value with these parameters and sample resource values."""
    return Renderer(t, overrides, samples).resolve(expr)


def condition(t: dict, name: str, overrides: Mapping[str, Any] | None = None) -> bool:
    return Renderer(t, overrides).condition(name)
