"""DynamoDB read capacity of a call, worked out from its request and answer as DynamoDB bills it.

moto answers `ReturnConsumedCapacity` with a fixed figure, so `scripts/bench functions` computes the
read request units (RRU) itself, from the items moto returns, by the rules in the DynamoDB Developer
Guide ("Item sizes and formats"; "Read request units"):

- an item's size is the sum over its attributes of the name's UTF-8 length plus the value's size:
  a string its UTF-8 length, a binary its byte length, a number about one byte per two significant
  digits plus one, a boolean or null one byte, a list or map 3 bytes plus its elements plus one
  byte per element (a map's keys count as names), a set the sum of its elements;
- GetItem: the item's full size (a ProjectionExpression does not lower it) rounded up to 4 KB,
  one unit per 4 KB strongly consistent, half eventually consistent; a missing item still costs one
  read of 4 KB;
- Query and Scan: the sizes of all items read summed, then rounded up to 4 KB, as above (an index
  is always read eventually consistent); the items read include those a FilterExpression then drops,
  which this cannot see from the answer, so `scanned > count` marks a figure as a lower bound;
- BatchGetItem: each item on its own, as GetItem.

Stdlib only.
"""

from __future__ import annotations

import base64
import math

UNIT_BYTES = 4096


def number_size(text: str) -> int:
    """DynamoDB's size of a number: 1 byte per 2 significant digits, plus 1."""
    digits = text.lstrip("+-").lower().split("e")[0].replace(".", "").strip("0")
    return (max(len(digits), 1) + 1) // 2 + 1


def value_size(v: dict) -> int:
    """The size of one attribute value in DynamoDB JSON ({"S": ...}, {"N": ...}, ...)."""
    (kind, x), = v.items()
    if kind == "S":
        return len(x.encode())
    if kind == "N":
        return number_size(x)
    if kind == "B":
        return len(base64.b64decode(x))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in x)
    if kind == "NS":
        return sum(number_size(n) for n in x)
    if kind == "BS":
        return sum(len(base64.b64decode(b)) for b in x)
    if kind == "L":
        return 3 + sum(value_size(e) + 1 for e in x)
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(e) + 1 for k, e in x.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict) -> int:
    return sum(len(name.encode()) + value_size(v) for name, v in item.items())


def units(size: int, consistent: bool) -> float:
    blocks = max(1, math.ceil(size / UNIT_BYTES))
    return blocks * (1.0 if consistent else 0.5)


def read_units(op: str, request: dict, answer: dict, full_item=None) -> tuple[float, bool]:
    """(RRU, exact) of one call; `exact` is False when a filter dropped items this cannot size.
    `full_item(table, key)` returns the stored item when a GetItem's projection hid part of it."""
    consistent = bool(request.get("ConsistentRead"))
    if op == "GetItem":
        item = answer.get("Item")
        if item is not None and request.get("ProjectionExpression") and full_item is not None:
            item = full_item(request["TableName"], request["Key"]) or item
        return units(item_size(item) if item else 0, consistent), True
    if op in ("Query", "Scan"):
        size = sum(item_size(i) for i in answer.get("Items") or [])
        exact = answer.get("ScannedCount", 0) <= answer.get("Count", 0)
        return units(size, consistent and not request.get("IndexName")), exact
    if op == "BatchGetItem":
        total = 0.0
        for table, items in (answer.get("Responses") or {}).items():
            strong = bool((request.get("RequestItems") or {}).get(table, {}).get("ConsistentRead"))
            total += sum(units(item_size(i), strong) for i in items)
        return total, True
    return 0.0, True
