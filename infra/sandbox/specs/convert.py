#!/usr/bin/env python3
"""Converts Xero's OpenAPI YAML specs (specs/xero/*.yaml) to JSON next to them.

The OpenAPI validation test reads the JSON with serde_json, so `cargo test` needs no YAML parser.
Run this again after replacing the YAML files with a newer copy of XeroAPI/Xero-OpenAPI:

    python3 infra/sandbox/specs/convert.py

Needs PyYAML (pip install pyyaml). Dates stay strings so the JSON matches the YAML text.
"""
import json
import pathlib

import yaml


class StringDates(yaml.SafeLoader):
    """SafeLoader that leaves timestamps as strings (JSON has no date type)."""


StringDates.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

here = pathlib.Path(__file__).resolve().parent / "xero"
for src in sorted(here.glob("*.yaml")):
    doc = yaml.load(src.read_text(encoding="utf-8"), Loader=StringDates)
    out = src.with_suffix(".json")
    out.write_text(json.dumps(doc, indent=1, sort_keys=False, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{src.name} -> {out.name}")
