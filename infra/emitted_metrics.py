"""The CloudWatch metrics the Rust code publishes, read from its source, and the metrics the
template's dashboard and alarms name, read from template.yaml; template_checks.py compares them.

Emitted metrics: every call of `telemetry::metric(name, value, unit, &[("key", value), ...])` under
shared/src and functions/*/src, published as shared/src/telemetry.rs's `emf_line_for` does: one
dimension set `service, stage, <own keys>`, plus `service, stage` alone for ALARMED_TOTALS. A call
this reader cannot resolve to literal names and keys (a name from a variable it cannot trace, keys
from a variable, `metric` renamed on import or passed as a value) is an error, never skipped: a
metric the reader cannot see is one the check cannot hold the dashboard to.
"""

from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class UnreadableCallSite(AssertionError):
    """A metric call (or a telemetry import) the extractor cannot read statically."""


# ---------------------------------------------------------------------------------------------------
# A Rust lexer, just enough to see calls outside comments and strings
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tok:
    kind: str  # "str" (value is the literal's content), "ident", "punct", "char", "num"
    value: str
    line: int


_PUNCT3 = ("..=", "<<=", ">>=", "...")
_PUNCT2 = ("::", "=>", "->", "==", "!=", "<=", ">=", "&&", "||", "+=", "-=", "*=", "/=", "..", "<<", ">>")


def _unescape(s: str) -> str:
    return re.sub(r'\\(["\\nrt0\'])', lambda m: {"n": "\n", "r": "\r", "t": "\t", "0": "\0"}.get(m.group(1), m.group(1)), s)


_SPACE = re.compile(r"\s+")
_RAW = re.compile(r'b?r(#*)"')
_CHAR = re.compile(r"(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'")
_IDENT = re.compile(r"[A-Za-z_]\w*")
_NUM = re.compile(r"[0-9][0-9_]*(\.[0-9][0-9_]*)?([eE][+-]?[0-9_]+)?[A-Za-z0-9_]*")


def tokenize(src: str) -> list[Tok]:
    toks: list[Tok] = []
    i, n, line = 0, len(src), 1
    while i < n:
        c = src[i]
        if c.isspace():
            j = _SPACE.match(src, i).end()
            line += src.count("\n", i, j)
            i = j
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            line += src.count("\n", i, j)
            i = j
        elif m := _RAW.match(src, i):
            # Raw string: ends at the quote followed by as many hashes.
            end = '"' + m.group(1)
            start = m.end()
            j = src.find(end, start)
            if j < 0:
                raise UnreadableCallSite(f"unterminated raw string at line {line}")
            toks.append(Tok("str", src[start:j], line))
            line += src.count("\n", i, j)
            i = j + len(end)
        elif c == '"' or src.startswith('b"', i):
            j = i + (2 if c == "b" else 1)
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            toks.append(Tok("str", _unescape(src[i + (2 if c == "b" else 1):j]), line))
            line += src.count("\n", i, j)
            i = j + 1
        elif c == "'" or src.startswith("b'", i):
            # A char literal ('a', '\n', '\u{1F600}') or a lifetime / label ('a, 'static).
            k = i + (2 if c == "b" else 1)
            m = _CHAR.match(src, k)
            if m:
                toks.append(Tok("char", m.group(1), line))
                i = m.end()
            else:
                m = _IDENT.match(src, k)
                toks.append(Tok("ident", "'" + (m.group(0) if m else ""), line))
                i = m.end() if m else k
        elif c.isalpha() or c == "_":
            m = _IDENT.match(src, i)
            toks.append(Tok("ident", m.group(0), line))
            i = m.end()
        elif c.isdigit():
            m = _NUM.match(src, i)
            toks.append(Tok("num", m.group(0), line))
            i = m.end()
        else:
            for p in _PUNCT3 + _PUNCT2:
                if src.startswith(p, i):
                    toks.append(Tok("punct", p, line))
                    i += len(p)
                    break
            else:
                toks.append(Tok("punct", c, line))
                i += 1
    return toks


_OPEN = {"(": ")", "[": "]", "{": "}"}


def _matching(toks: list[Tok], i: int) -> int:
    """Index of the bracket closing the one at toks[i]."""
    stack = []
    for j in range(i, len(toks)):
        v = toks[j].value if toks[j].kind == "punct" else None
        if v in _OPEN:
            stack.append(_OPEN[v])
        elif v in (")", "]", "}"):
            if not stack or stack.pop() != v:
                raise UnreadableCallSite(f"unbalanced {v!r} at line {toks[j].line}")
            if not stack:
                return j
    raise UnreadableCallSite(f"unclosed {toks[i].value!r} at line {toks[i].line}")


def _split_top(toks: list[Tok]) -> list[list[Tok]]:
    """Splits a bracket's contents at its top-level commas (a trailing comma adds nothing)."""
    parts, cur, depth = [], [], 0
    for t in toks:
        v = t.value if t.kind == "punct" else None
        if v in _OPEN:
            depth += 1
        elif v in (")", "]", "}"):
            depth -= 1
        if v == "," and depth == 0:
            parts.append(cur)
            cur = []
        else:
            cur.append(t)
    if cur:
        parts.append(cur)
    return parts


def _without_test_modules(toks: list[Tok]) -> list[Tok]:
    """Drops `#[cfg(test)] mod x { ... }`: tests' metric calls publish nothing."""
    out, i = [], 0
    pat = ["#", "[", "cfg", "(", "test", ")", "]"]
    while i < len(toks):
        if [t.value for t in toks[i:i + 7]] == pat:
            j = i + 7
            while j < len(toks) and toks[j].value == "#":  # further attributes
                j = _matching(toks, j + 1) + 1
            if j + 2 < len(toks) and toks[j].value == "pub":
                j += 1
            if j + 2 < len(toks) and toks[j].value == "mod" and toks[j + 2].value == "{":
                i = _matching(toks, j + 2) + 1
                continue
        out.append(toks[i])
        i += 1
    return out


# ---------------------------------------------------------------------------------------------------
# telemetry.rs's constants and the metric calls
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Telemetry:
    path: str
    namespace: str
    service: str
    deployment_dimensions: tuple[str, ...]
    alarmed_totals: frozenset[str]


def _source_files(root: str) -> list[str]:
    files = glob.glob(os.path.join(root, "shared", "src", "**", "*.rs"), recursive=True)
    files += glob.glob(os.path.join(root, "functions", "*", "src", "**", "*.rs"), recursive=True)
    return sorted(files)


def read_telemetry(root: str = ROOT) -> Telemetry:
    """The constants of the module that defines `pub fn metric` (shared/src/telemetry.rs today)."""
    homes = []
    for path in glob.glob(os.path.join(root, "shared", "src", "**", "*.rs"), recursive=True):
        with open(path, encoding="utf-8") as f:
            if re.search(r"pub fn metric\s*\(", f.read()):
                homes.append(path)
    if len(homes) != 1:
        raise UnreadableCallSite(f"expected one `pub fn metric` under shared/src, found {homes}")
    with open(homes[0], encoding="utf-8") as f:
        src = f.read()

    def const(name: str, pattern: str) -> re.Match:
        m = re.search(rf"pub const {name}: {pattern}", src)
        if not m:
            raise UnreadableCallSite(f"{os.path.relpath(homes[0], root)}: `pub const {name}` not found or changed shape")
        return m

    def strings(text: str) -> list[str]:
        return re.findall(r'"([^"\\]*)"', text)

    return Telemetry(
        path=homes[0],
        namespace=const("NAMESPACE", r'&str = "([^"]+)";').group(1),
        service=const("SERVICE", r'&str = "([^"]+)";').group(1),
        deployment_dimensions=tuple(strings(const("DEPLOYMENT_DIMENSIONS", r"\[&str; \d+\] =\s*\[([^\]]*)\]").group(1))),
        alarmed_totals=frozenset(strings(const("ALARMED_TOTALS", r"\[&str; \d+\] =\s*\[([^\]]*)\]").group(1))),
    )


def _where(path: str, tok: Tok, root: str) -> str:
    return f"{os.path.relpath(path, root)}:{tok.line}"


def _names_bound_to(toks: list[Tok], call: int, var: str, where: str) -> list[str]:
    """The literal metric names a `let` before the call binds to `var`: `let var = "X";`,
    `let (var, ..) = ("X", ..);` or a `match` whose every arm yields `"X"` / `("X", ..)`."""
    for i in range(call - 1, -1, -1):
        if toks[i].kind == "ident" and toks[i].value == "fn":
            break  # only the enclosing function's bindings (closures aside) can name it
        if toks[i].value != "let" or toks[i].kind != "ident":
            continue
        j = i + 1
        if toks[j].value == "mut":
            j += 1
        if toks[j].value == var and toks[j].kind == "ident":
            tupled = False
        elif toks[j].value == "(" and toks[j + 1].value == var:
            tupled = True
        else:
            continue
        semi = next((k for k in range(j, call) if toks[k].value == ";"), call)
        eq = next((k for k in range(j, semi) if toks[k].value == "=" and toks[k].kind == "punct"), None)
        if eq is None:
            raise UnreadableCallSite(f"{where}: metric name `{var}` is declared without a value")
        end, depth = eq + 1, 0
        while end < call and not (depth == 0 and toks[end].value == ";"):
            if toks[end].value in _OPEN:
                depth += 1
            elif toks[end].value in (")", "]", "}"):
                depth -= 1
            end += 1
        rhs = toks[eq + 1:end]

        def literal_at(k: int) -> str | None:
            if tupled:
                ok = k + 1 < len(rhs) and rhs[k].value == "(" and rhs[k + 1].kind == "str"
                return rhs[k + 1].value if ok else None
            return rhs[k].value if k < len(rhs) and rhs[k].kind == "str" else None

        if rhs and rhs[0].value == "match":
            body = next((k for k, t in enumerate(rhs) if t.value == "{"), None)
            arms = [k for k, t in enumerate(rhs) if t.value == "=>"]
            if body is None or not arms:
                raise UnreadableCallSite(f"{where}: metric name `{var}` comes from a match this reader cannot follow")
            names = [literal_at(k + 1) for k in arms]
            if None in names or _matching(rhs, body) != len(rhs) - 1:
                raise UnreadableCallSite(f"{where}: metric name `{var}`: every arm of its match must yield a string literal")
            return names
        name = literal_at(0)
        if name is None:
            raise UnreadableCallSite(f"{where}: metric name `{var}` is bound to something other than a string literal or a match")
        return [name]
    raise UnreadableCallSite(f"{where}: metric name `{var}` is not bound by a `let` before the call in its function")


def _read_call(path: str, toks: list[Tok], i: int, root: str) -> tuple[list[str], tuple[str, ...]]:
    """(names, own dimension keys) of the call whose `metric` token is toks[i]."""
    where = _where(path, toks[i], root)
    close = _matching(toks, i + 1)
    args = _split_top(toks[i + 2:close])
    if len(args) != 4:
        raise UnreadableCallSite(f"{where}: metric(..) with {len(args)} arguments, expected 4")
    name_arg, dims = args[0], args[3]
    if len(name_arg) == 1 and name_arg[0].kind == "str":
        names = [name_arg[0].value]
    elif len(name_arg) == 1 and name_arg[0].kind == "ident":
        names = _names_bound_to(toks, i, name_arg[0].value, where)
    else:
        raise UnreadableCallSite(f"{where}: the metric name must be a string literal or a variable bound to literals")
    if len(dims) < 3 or dims[0].value != "&" or dims[1].value != "[" or _matching(dims, 1) != len(dims) - 1:
        raise UnreadableCallSite(f"{where}: dimensions must be a literal slice &[(\"key\", value), ...]")
    keys = []
    for el in _split_top(dims[2:-1]):
        if len(el) < 4 or el[0].value != "(" or el[1].kind != "str" or el[2].value != "," or _matching(el, 0) != len(el) - 1:
            raise UnreadableCallSite(f"{where}: each dimension must be a tuple with a literal key (\"key\", value)")
        keys.append(el[1].value)
    return names, tuple(keys)


def _imports_metric(toks: list[Tok], path: str, root: str) -> bool:
    """Whether the file brings telemetry's `metric` into scope by that name; a rename is an error."""
    imported = False
    for i, t in enumerate(toks):
        if t.value != "use" or t.kind != "ident":
            continue
        end = next(k for k in range(i, len(toks)) if toks[k].value == ";")
        stmt = toks[i:end]
        text = " ".join(x.value for x in stmt)
        if "telemetry" not in text:
            continue
        if re.search(r"\btelemetry as\b|\bmetric as\b", text):
            raise UnreadableCallSite(f"{_where(path, t, root)}: telemetry or its metric is imported under another name")
        if re.search(r"telemetry :: (\{[^;]*\bmetric\b|metric\b)", text):
            imported = True
    return imported


def emitted_metrics(root: str = ROOT) -> dict[str, set[tuple[str, ...]]]:
    """{metric name: the dimension-key sets it is published with}, as telemetry.rs publishes them."""
    tel = read_telemetry(root)
    out: dict[str, set[tuple[str, ...]]] = {}
    for path in _source_files(root):
        with open(path, encoding="utf-8") as f:
            src = f.read()
        if "metric" not in src and "telemetry" not in src:
            continue  # nothing to read (and tokenizing everything costs seconds)
        toks = _without_test_modules(tokenize(src))
        home = os.path.samefile(path, tel.path)
        bare_ok = home or _imports_metric(toks, path, root)
        in_use, k = set(), 0
        while k < len(toks):
            if toks[k].kind == "ident" and toks[k].value == "use":
                end = next(j for j in range(k, len(toks)) if toks[j].value == ";")
                in_use.update(range(k, end))
                k = end
            k += 1
        for i, t in enumerate(toks):
            if t.kind != "ident" or t.value != "metric" or i in in_use:
                continue
            prev = toks[i - 1] if i else None
            if prev and prev.value in ("fn", "."):
                continue  # its definition, or a method of something else
            qualified = prev is not None and prev.value == "::"
            if qualified and not (i >= 2 and toks[i - 2].value == "telemetry"):
                continue  # some other module's `metric`
            if i + 1 >= len(toks) or toks[i + 1].value != "(":
                if qualified or bare_ok:
                    raise UnreadableCallSite(f"{_where(path, t, root)}: telemetry::metric used other than by a direct call")
                continue
            if not qualified and not bare_ok:
                raise UnreadableCallSite(f"{_where(path, t, root)}: a bare metric(..) call in a file that does not import telemetry::metric")
            names, own = _read_call(path, toks, i, root)
            own = tuple(k for k in own if k not in tel.deployment_dimensions)
            for name in names:
                sets = out.setdefault(name, set())
                sets.add(tel.deployment_dimensions + own)
                if name in tel.alarmed_totals and own:
                    sets.add(tel.deployment_dimensions)
    if not out:
        raise UnreadableCallSite("found no telemetry::metric calls under shared/src and functions/*/src")
    return out


# ---------------------------------------------------------------------------------------------------
# The metrics a template names
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NamedMetric:
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]  # (key, value as written; "" when a SEARCH leaves it open)
    where: str  # for messages: "SyncCopyStaleAlarm", "dashboard 'Sync jobs' SEARCH", ...
    search: str | None = None  # the SEARCH expression's query, when it came from one


_SEARCH = re.compile(r"SEARCH\(\s*'((?:[^'\\]|\\.)*)'")
_SCHEMA = re.compile(r"^\s*\{([^}]*)\}")


def _search_metrics(expr: str, where: str) -> list[NamedMetric]:
    out = []
    for query in _SEARCH.findall(expr):
        schema = _SCHEMA.match(query)
        if not schema:
            raise AssertionError(f"{where}: SEARCH without a {{namespace,dimension,...}} schema: {query}")
        parts = [p.strip().strip('"') for p in schema.group(1).split(",")]
        names = re.findall(r'\bMetricName\s*=\s*"([^"]+)"', query)
        if len(names) != 1 or re.search(r"\bMetricName\s*=\s*\(", query):
            raise AssertionError(f"{where}: a SEARCH must name exactly one metric (MetricName=\"X\"): {query}")
        out.append(NamedMetric(parts[0], names[0], tuple((k, "") for k in parts[1:]), f"{where} SEARCH", query))
    return out


def dashboard_metrics(body: dict, where: str = "dashboard") -> list[NamedMetric]:
    """Every metric a dashboard body's metric widgets name, explicitly or through SEARCH."""
    out = []
    for n, widget in enumerate(body.get("widgets", [])):
        props = widget.get("properties", {})
        label = f"{where} widget {props.get('title', n)!r}"
        for entry in props.get("metrics", []):
            if not isinstance(entry, list) or not entry:
                raise AssertionError(f"{label}: a metrics entry must be an array: {entry!r}")
            if isinstance(entry[0], dict):
                out += _search_metrics(entry[0].get("expression", ""), label)
                continue
            fields = [f for f in entry if not isinstance(f, dict)]
            if any(f in (".", "...") for f in fields):
                raise AssertionError(f"{label}: write metrics out in full (no '.'/'...' shorthand): {entry!r}")
            if len(fields) < 2 or len(fields) % 2:
                raise AssertionError(f"{label}: expected [namespace, name, key, value, ...]: {entry!r}")
            dims = tuple((fields[k], fields[k + 1]) for k in range(2, len(fields), 2))
            out.append(NamedMetric(fields[0], fields[1], dims, label))
    return out


def alarm_metrics(t: dict) -> list[NamedMetric]:
    """The metric of every CloudWatch alarm, plain or in Metrics[].MetricStat."""
    out = []
    for name, r in t["Resources"].items():
        if r["Type"] != "AWS::CloudWatch::Alarm":
            continue
        p = r["Properties"]
        specs = [p] if "MetricName" in p else []
        specs += [m["MetricStat"]["Metric"] for m in p.get("Metrics", []) if "MetricStat" in m]
        for s in specs:
            dims = tuple((d["Name"], d["Value"]) for d in s.get("Dimensions", []))
            out.append(NamedMetric(s.get("Namespace", ""), s["MetricName"], dims, name))
    return out


def dashboard_body(r: dict) -> tuple[dict, dict]:
    """(parsed body, the !Sub's variable map) of a dashboard whose DashboardBody is a !Sub of JSON.
    `${X}` stays in the strings as written (it is valid JSON inside a string)."""
    body = r["Properties"]["DashboardBody"]
    if not (isinstance(body, dict) and "Fn::Sub" in body):
        raise AssertionError("DashboardBody must be a !Sub of a JSON string")
    sub = body["Fn::Sub"]
    text, variables = (sub, {}) if isinstance(sub, str) else (sub[0], sub[1])
    try:
        return json.loads(text), variables
    except json.JSONDecodeError as e:
        raise AssertionError(f"DashboardBody is not JSON: {e}") from e


def sub_reference(value: str) -> str | None:
    """`X` when value is exactly `${X}` or `${X.Attr}`."""
    m = re.fullmatch(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}", value)
    return m.group(1) if m else None
