#!/usr/bin/env python3
"""Keeps `shared`'s dependencies pointing one way (issue 25; docs in README "Architecture").

Reads every `crate::<module>` path in shared/src (use lines and inline paths), maps each file to its
module and layer, and fails on an edge that points up a layer, sideways between two flows, or from
one provider's module to another's. Layers, bottom to top: the foundation, storage/model/clients,
the flows (which never import each other), the job runner above the flows (`worker`), fuzzing. Edges that exist today are listed in infra/layers-baseline.txt:
they are reported but allowed, so the check fails only on a *new* back-edge, and it also fails when a
baseline edge is gone (remove it from the file: the list only shrinks).

    python3 infra/check_layers.py            check
    python3 infra/check_layers.py --write    rewrite the baseline from the current code (review the diff)
"""

from __future__ import annotations

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "shared", "src")
BASELINE = os.path.join(ROOT, "infra", "layers-baseline.txt")

# Bottom to top. A module may use its own layer's modules (except flows: see FLOWS) and lower ones.
LAYERS: list[set[str]] = [
    # foundation: no I/O policy, used by everything
    {"error", "config", "secret", "context", "telemetry", "aws", "http_client", "tokens", "provider", "money", "books"},
    # storage, model and clients: the bottom the flows stand on
    # (grant_tokens: unseal a stored grant's tokens, re-seal under the current key; store + vault + audit)
    {"store", "tenancy", "vault", "secrets", "providers", "jobs", "events", "audit", "resilience", "grant_tokens", "initial_sync"},
    # flows
    {"connect", "refresh", "webhooks", "sync", "reports"},
    # above the flows, using several of them:
    # - worker: the sync worker's job runner: dispatches every job kind (pull, push, webhook,
    #   report, passthrough) to the flows, with on-demand tokens (refresh) and nonces (webhooks)
    # - records: the records API reads sync's records and checks requests with connect's app
    #   signature, so it stands on both rather than beside them
    # - writes: what a write sends, checked against the stored books (sync's records)
    {"worker", "records", "writes"},
    # the fuzz targets' entry points reach into any layer
    {"fuzzing"},
]
FLOWS = LAYERS[2]
# Provider modules that must not import each other; shared pieces live in providers/{core,client,
# model,errors,oauth,raw,endpoints}.
PROVIDER_FILES = {"quickbooks", "xero", "zoho", "zoho_webhooks"}


def layer_of(module: str) -> int:
    for i, layer in enumerate(LAYERS):
        if module in layer:
            return i
    raise SystemExit(f"check_layers: module '{module}' has no layer; add it to LAYERS in infra/check_layers.py")


def module_of(path: str, src: str = SRC) -> tuple[str, str]:
    """(top-level module, sub-module or '') of a file under shared/src."""
    rel = os.path.relpath(path, src).replace(os.sep, "/")
    parts = rel[:-3].split("/")  # strip .rs
    if parts[0] == "lib":
        return "", ""
    if len(parts) == 1:
        return parts[0], ""
    return parts[0], "" if parts[1] == "mod" else parts[1]


def strip_comments(code: str) -> str:
    code = re.sub(r"/\*.*?\*/", "", code, flags=re.S)
    return "\n".join(line.split("//", 1)[0] for line in code.splitlines())


def edges(src: str = SRC) -> set[str]:
    root = os.path.dirname(os.path.dirname(src))
    out: set[str] = set()
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            src_mod, src_sub = module_of(path, src)
            if not src_mod:
                continue
            with open(path, encoding="utf-8") as fh:
                code = strip_comments(fh.read())
            # Test modules may reach anywhere; cut the file at its `#[cfg(test)]` module.
            code = code.split("#[cfg(test)]\nmod tests", 1)[0]
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            targets: set[tuple[str, str]] = set()
            for m in re.finditer(r"crate::(\w+)(?:::(\w+))?", code):
                targets.add((m.group(1), m.group(2) or ""))
            # `use crate::{a, b::c}` groups
            for m in re.finditer(r"use crate::\{([^;]*)\};", code, flags=re.S):
                for item in re.split(r",(?![^{]*\})", m.group(1)):
                    item = item.strip()
                    if not item:
                        continue
                    head = re.match(r"(\w+)(?:::(\w+))?", item)
                    if head:
                        targets.add((head.group(1), head.group(2) or ""))
            for dst, dst_sub in sorted(targets):
                if dst in ("self", "super") or dst[0].isupper() or dst == src_mod:
                    if dst == src_mod and dst == "providers" and src_sub in PROVIDER_FILES and dst_sub in PROVIDER_FILES \
                            and dst_sub != src_sub:
                        out.add(f"{rel} -> providers::{dst_sub} (provider imports provider)")
                    continue
                if dst not in {m for layer in LAYERS for m in layer}:
                    continue  # a re-export at the crate root (Error, Result, ...), foundation
                a, b = layer_of(src_mod), layer_of(dst)
                if b > a:
                    out.add(f"{rel} -> {dst} (up: layer {a} uses layer {b})")
                elif a == b and src_mod in FLOWS:
                    out.add(f"{rel} -> {dst} (sideways between flows)")
    # providers/x.rs importing `super::y` where both are provider files
    pdir = os.path.join(src, "providers")
    for f in (os.listdir(pdir) if os.path.isdir(pdir) else []):
        name = f[:-3]
        if name not in PROVIDER_FILES:
            continue
        with open(os.path.join(pdir, f), encoding="utf-8") as fh:
            code = strip_comments(fh.read()).split("#[cfg(test)]\nmod tests", 1)[0]
        for m in re.finditer(r"super::(\w+)", code):
            if m.group(1) in PROVIDER_FILES and m.group(1) != name:
                out.add(f"shared/src/providers/{f} -> providers::{m.group(1)} (provider imports provider)")
    return out


def main() -> int:
    now = edges()
    if "--write" in sys.argv:
        with open(BASELINE, "w", encoding="utf-8") as fh:
            fh.write("# Back-edges that exist today (infra/check_layers.py). This list only shrinks.\n")
            fh.writelines(f"{e}\n" for e in sorted(now))
        print(f"wrote {len(now)} edges to {os.path.relpath(BASELINE, ROOT)}")
        return 0
    with open(BASELINE, encoding="utf-8") as fh:
        base = {line.strip() for line in fh if line.strip() and not line.startswith("#")}
    new = sorted(now - base)
    gone = sorted(base - now)
    for e in sorted(now & base):
        print(f"known  {e}")
    for e in new:
        print(f"NEW    {e}")
    for e in gone:
        print(f"GONE   {e} (fixed: remove it from infra/layers-baseline.txt)")
    print(f"layers: {len(now)} back-edges, {len(new)} new, {len(gone)} gone from the baseline")
    return 1 if new or gone else 0


if __name__ == "__main__":
    sys.exit(main())
