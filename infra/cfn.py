"""Just enough CloudFormation to read template.yaml outside AWS.

Loads the template with a YAML loader that understands the short intrinsic tags (!Ref, !Sub, ...),
evaluates Conditions, and resolves intrinsic functions against parameter values, pseudo parameters
and the physical ids/attributes of resources that something else (infra/provision.py) created.
Used by provision.py (local stack on moto) and template_checks.py (invariants cfn-lint cannot know).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import yaml

# ---------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------

_SHORT_TAGS = [
    "Base64", "Cidr", "FindInMap", "GetAZs", "ImportValue", "Join", "Select", "Split", "Sub",
    "Transform", "If", "Equals", "Not", "And", "Or", "ToJsonString", "Length",
]


class CfnLoader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation's short-form tags, turned into their long forms."""


def _construct(loader: yaml.Loader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


def _long_form(name: str) -> Callable[[yaml.Loader, yaml.Node], Any]:
    def build(loader: yaml.Loader, node: yaml.Node) -> Any:
        value = _construct(loader, node)
        if name == "Ref":
            return {"Ref": value}
        if name == "Condition":
            return {"Condition": value}
        if name == "GetAtt" and isinstance(value, str):
            # !GetAtt Resource.Attr.With.Dots -> only the first dot separates the resource.
            resource, _, attr = value.partition(".")
            value = [resource, attr]
        return {f"Fn::{name}": value}

    return build


for _tag in _SHORT_TAGS + ["Ref", "Condition", "GetAtt"]:
    CfnLoader.add_constructor(f"!{_tag}", _long_form(_tag))


def load_template(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=CfnLoader)  # noqa: S506 - CfnLoader derives from SafeLoader


# ---------------------------------------------------------------------------------------------------
# Resolving
# ---------------------------------------------------------------------------------------------------

NO_VALUE = object()  # AWS::NoValue: the property disappears.


class Unresolvable(Exception):
    pass


@dataclass
class Physical:
    """What CloudFormation would return for !Ref and !GetAtt on one created resource."""

    ref: str
    attrs: dict[str, str] = field(default_factory=dict)


def intrinsic(node: Any) -> tuple[str, Any] | None:
    """(function name, argument) when `node` is an intrinsic function call, else None."""
    if isinstance(node, dict) and len(node) == 1:
        (key, value), = node.items()
        if key == "Ref" or key == "Condition" or key.startswith("Fn::"):
            return key, value
    return None


_SUB_VAR = re.compile(r"\$\{([^}]*)\}")


def sub_variables(template_string: str) -> list[str]:
    """Names referenced by a Fn::Sub string (`${!Literal}` escapes are not references)."""
    return [m.group(1) for m in _SUB_VAR.finditer(template_string) if not m.group(1).startswith("!")]


def references(node: Any) -> set[str]:
    """Logical names (resources or parameters) that `node` refers to via Ref, GetAtt or Sub."""
    found: set[str] = set()
    call = intrinsic(node)
    if call:
        name, arg = call
        if name == "Ref" and isinstance(arg, str):
            found.add(arg)
        elif name == "Fn::GetAtt":
            parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
            found.add(parts[0])
        elif name == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            for var in sub_variables(text):
                if var not in variables:
                    found.add(var.split(".", 1)[0])
            found |= references(variables)
        else:
            found |= references(arg)
        return found
    if isinstance(node, dict):
        for v in node.values():
            found |= references(v)
    elif isinstance(node, list):
        for v in node:
            found |= references(v)
    return found


class Resolver:
    def __init__(self, template: dict, parameters: dict[str, str], pseudo: dict[str, str]):
        self.template = template
        self.parameters = self._parameter_values(parameters)
        self.pseudo = pseudo
        self.physical: dict[str, Physical] = {}
        self._conditions: dict[str, bool] = {}

    def _parameter_values(self, overrides: dict[str, str]) -> dict[str, str]:
        declared = self.template.get("Parameters", {}) or {}
        unknown = set(overrides) - set(declared)
        if unknown:
            raise Unresolvable(f"parameters not declared in the template: {sorted(unknown)}")
        values = {}
        for name, spec in declared.items():
            if name in overrides:
                value = overrides[name]
            elif "Default" in spec:
                value = str(spec["Default"])
            else:
                raise Unresolvable(f"parameter {name} has no default and no value was given")
            allowed = spec.get("AllowedValues")
            if allowed is not None and value not in [str(a) for a in allowed]:
                raise Unresolvable(f"parameter {name}={value!r} is not one of {allowed}")
            pattern = spec.get("AllowedPattern")
            if pattern is not None and not re.fullmatch(pattern, value):
                raise Unresolvable(f"parameter {name}={value!r} does not match {pattern}")
            values[name] = value
        return values

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self.template.get("Conditions", {}) or {}
            if name not in conditions:
                raise Unresolvable(f"unknown condition {name}")
            self._conditions[name] = bool(self._condition_value(conditions[name]))
        return self._conditions[name]

    def _condition_value(self, node: Any) -> bool:
        call = intrinsic(node)
        if not call:
            raise Unresolvable(f"not a condition function: {node!r}")
        name, arg = call
        if name == "Condition":
            return self.condition(arg)
        if name == "Fn::Equals":
            left, right = (self.resolve(a) for a in arg)
            return str(left) == str(right)
        if name == "Fn::Not":
            return not self._condition_value(arg[0])
        if name == "Fn::And":
            return all(self._condition_value(a) for a in arg)
        if name == "Fn::Or":
            return any(self._condition_value(a) for a in arg)
        raise Unresolvable(f"unsupported condition function {name}")

    def ref(self, name: str) -> Any:
        if name in self.parameters:
            return self.parameters[name]
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.physical:
            return self.physical[name].ref
        raise Unresolvable(f"Ref {name}: not a parameter, pseudo parameter or created resource")

    def get_att(self, resource: str, attr: str) -> str:
        physical = self.physical.get(resource)
        if physical is None:
            raise Unresolvable(f"GetAtt {resource}.{attr}: resource not created")
        if attr not in physical.attrs:
            raise Unresolvable(f"GetAtt {resource}.{attr}: attribute unknown (have {sorted(physical.attrs)})")
        return physical.attrs[attr]

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def replace(m: re.Match) -> str:
            var = m.group(1)
            if var.startswith("!"):
                return "${" + var[1:] + "}"
            if var in variables:
                return str(variables[var])
            if "." in var and var.split(".", 1)[0] in self.physical:
                return str(self.get_att(*var.split(".", 1)))
            return str(self.ref(var))

        return _SUB_VAR.sub(replace, text)

    def resolve(self, node: Any) -> Any:
        call = intrinsic(node)
        if call:
            name, arg = call
            if name == "Ref":
                return self.ref(arg)
            if name == "Condition":
                return self.condition(arg)
            if name == "Fn::GetAtt":
                parts = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(self.resolve(parts[0]), self.resolve(parts[1]))
            if name == "Fn::Sub":
                return self._sub(arg)
            if name == "Fn::If":
                cond, when_true, when_false = arg
                return self.resolve(when_true if self.condition(cond) else when_false)
            if name == "Fn::Join":
                sep, items = arg
                return str(sep).join(str(i) for i in self.resolve(items) if i is not NO_VALUE)
            if name == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if name == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(sep)
            if name == "Fn::FindInMap":
                mapping, top, second = (self.resolve(a) for a in arg[:3])
                return self.template["Mappings"][mapping][top][second]
            if name == "Fn::ToJsonString":
                return json.dumps(self.resolve(arg), separators=(",", ":"))
            if name in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or"):
                return self._condition_value(node)
            raise Unresolvable(f"unsupported intrinsic function {name}")
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                r = self.resolve(v)
                if r is not NO_VALUE:
                    out[k] = r
            return out
        if isinstance(node, list):
            return [r for r in (self.resolve(v) for v in node) if r is not NO_VALUE]
        return node


def resource_order(resources: dict[str, dict], selected: set[str]) -> list[str]:
    """Selected logical ids in dependency order (a resource after everything it references).

    References to resources outside the selection are ignored: the caller only creates the
    selection. A cycle inside it is an error (CloudFormation would refuse it too).
    """
    deps = {}
    for name in selected:
        body = resources[name]
        refs = references(body.get("Properties", {}))
        depends_on = body.get("DependsOn", [])
        refs |= set([depends_on] if isinstance(depends_on, str) else depends_on)
        deps[name] = sorted((refs & selected) - {name})
    ordered: list[str] = []
    state: dict[str, str] = {}

    def visit(n: str, path: list[str]) -> None:
        if state.get(n) == "done":
            return
        if state.get(n) == "visiting":
            raise Unresolvable("dependency cycle: " + " -> ".join(path + [n]))
        state[n] = "visiting"
        for d in deps[n]:
            visit(d, path + [n])
        state[n] = "done"
        ordered.append(n)

    # Sorted so the order is stable from run to run (easier to read logs and diffs).
    for n in sorted(selected):
        visit(n, [])
    return ordered
