"""The params JSON schema, and which of its object definitions apply where in a params dict.

`visits` walks a params dict together with the schema ($ref, allOf, if/then/else followed
the way a validator does) and yields every (schema object, place in the params) pair. The
valid keys at a place are the union of the `properties` of the objects applying there: that
is what an "is not a setting; did you mean ...?" message suggests from.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

SCHEMA = Path(__file__).with_name("params.schema.yaml")


@lru_cache(maxsize=1)
def load_schema() -> dict:
    with open(SCHEMA) as f:
        return yaml.safe_load(f)


def _resolve(schema: dict, ref: str) -> dict:
    node = schema
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


_validators: dict = {}


def _valid(schema: dict, sub: dict, instance) -> bool:
    import jsonschema

    key = (id(schema), id(sub))
    if key not in _validators:
        _validators[key] = (sub, jsonschema.Draft202012Validator({**sub, "$defs": schema.get("$defs", {})}))
    return _validators[key][1].is_valid(instance)


def is_object_node(node) -> bool:
    """A schema node that describes a mapping's keys (and so must close them)."""
    return isinstance(node, dict) and any(k in node for k in ("properties", "additionalProperties", "unevaluatedProperties"))


def visits(instance, schema: dict | None = None):
    """Yield (schema pointer, key path, schema node) for every schema object applied to a dict of `instance`."""
    schema = schema or load_schema()

    def walk(node, pointer, inst, path):
        if not isinstance(node, dict):
            return
        if isinstance(inst, dict) and is_object_node(node):
            yield pointer, path, node
        if "$ref" in node:
            yield from walk(_resolve(schema, node["$ref"]), node["$ref"], inst, path)
        for i, sub in enumerate(node.get("allOf", ())):
            yield from walk(sub, f"{pointer}/allOf/{i}", inst, path)
        for key in ("anyOf", "oneOf"):
            for i, sub in enumerate(node.get(key, ())):
                if _valid(schema, sub, inst):
                    yield from walk(sub, f"{pointer}/{key}/{i}", inst, path)
        if "if" in node:
            branch = "then" if _valid(schema, node["if"], inst) else "else"
            yield from walk(node.get(branch), f"{pointer}/{branch}", inst, path)
        if isinstance(inst, dict):
            props, extra = node.get("properties", {}), node.get("additionalProperties")
            for k, v in inst.items():
                if k in props:
                    yield from walk(props[k], f"{pointer}/properties/{k}", v, (*path, k))
                elif isinstance(extra, dict):
                    yield from walk(extra, f"{pointer}/additionalProperties", v, (*path, k))
        elif isinstance(inst, list) and isinstance(node.get("items"), dict):
            for i, v in enumerate(inst):
                yield from walk(node["items"], f"{pointer}/items", v, (*path, i))

    yield from walk(schema, "#", instance, ())


def settings_at(instance, path: tuple, schema: dict | None = None) -> set[str] | None:
    """The keys the schema names for the dict at `path` (None: a free mapping, e.g. `datasets`)."""
    keys, free = set(), False
    for _, p, node in visits(instance, schema):
        if p == tuple(path):
            keys |= set(node.get("properties", {}))
            free = free or isinstance(node.get("additionalProperties"), dict)
    return None if free else keys
