"""Prints, as JSON, what the installed LLaMA-Factory itself says it accepts.

Run inside the real-tools venv (scripts/gen-reference.mjs does): every init field of the argument
dataclasses that `llamafactory-cli train` and `llamafactory-cli export` parse (type, default, choices,
help, which command accepts it), the registered chat templates, and the keys its dataset parser reads
from dataset_info.json. Everything comes from the imported package (dataclass fields, the parser's
own class lists, the template registry, a probe of the dataset parser), never from its docs, so the
output changes exactly when the pinned package does.

The output is deterministic: declaration order for fields, sorted names elsewhere, no timestamps,
no machine paths.
"""

import dataclasses
import enum
import importlib.metadata
import json
import os
import re
import sys
import types
import typing

# The stack's versions go into the generated header, so a table always says what it describes.
VERSIONED = ["llamafactory", "transformers", "peft", "accelerate", "trl", "datasets", "torch", "vllm"]


def _stdout_to_stderr():
    """LLaMA-Factory and transformers log to stdout on import; keep stdout for the JSON alone."""
    real = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return real


def type_name(tp) -> str:
    """A stable, readable spelling of a resolved annotation (`int | None`, `Literal['a', 'b']`)."""
    if tp is type(None):
        return "None"
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(type_name(a) for a in args)
    if origin is typing.Literal:
        return "Literal[" + ", ".join(repr(a) for a in args) + "]"
    if origin is not None:
        name = getattr(origin, "__name__", None) or str(origin).replace("typing.", "")
        return f"{name}[{', '.join(type_name(a) for a in args)}]" if args else name
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def flatten(tp) -> list:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        out = []
        for a in typing.get_args(tp):
            out.extend(flatten(a))
        return out
    return [tp]


def is_enum(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, enum.Enum)


def value_type(tp) -> str:
    """The JSON-level kind tunepipe checks a YAML value against: bool, int, float, str, dict or any."""
    parts = [p for p in flatten(tp) if p is not type(None)]
    kinds = set()
    for p in parts:
        origin = typing.get_origin(p)
        if p is bool:
            kinds.add("bool")
        elif p is int:
            kinds.add("int")
        elif p is float:
            kinds.add("float")
        elif p is str or is_enum(p):
            kinds.add("str")
        elif origin is typing.Literal:
            lits = typing.get_args(p)
            if all(isinstance(v, bool) for v in lits):
                kinds.add("bool")
            elif all(isinstance(v, int) and not isinstance(v, bool) for v in lits):
                kinds.add("int")
            elif all(isinstance(v, str) for v in lits):
                kinds.add("str")
            else:
                kinds.add("any")
        elif p is dict or origin is dict:
            kinds.add("dict")
        else:
            kinds.add("any")
    if kinds == {"int", "float"}:
        return "float"
    return kinds.pop() if len(kinds) == 1 else "any"


def choices(tp):
    """Declared values: Literal members and Enum values (HF converts enum-typed strings in __post_init__)."""
    out = []
    for p in flatten(tp):
        if typing.get_origin(p) is typing.Literal:
            out.extend(typing.get_args(p))
        elif is_enum(p):
            out.extend(m.value for m in p)
    return out or None


def jsonable(value):
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    return str(value)


def field_default(f):
    if f.default is not dataclasses.MISSING:
        return True, jsonable(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return True, jsonable(f.default_factory())
    return False, None


def normalize_help(text):
    if not text:
        return None
    return re.sub(r"\s+", " ", str(text)).strip() or None


def declared_in(cls, name: str) -> str:
    for klass in cls.__mro__:
        if name in getattr(klass, "__annotations__", {}):
            return klass.__name__
    return cls.__name__


def _report_to_values():
    # HF looks each report_to entry up in this registry when the Trainer starts and raises for an
    # unknown one; "all" and "none" are handled by TrainingArguments.__post_init__.
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    return sorted(set(INTEGRATION_TO_CALLBACK) | {"all", "none"})


# Fields annotated as plain strings whose values the stack still checks later, against a registry.
KNOWN_VALUES = {"report_to": _report_to_values}


def argument_fields(parser_module):
    """Every init field of the dataclasses the train and the export/infer parsers are built from."""
    train = list(parser_module._TRAIN_ARGS)
    infer = list(parser_module._INFER_ARGS)
    out = {}
    for cls in train + [c for c in infer if c not in train]:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if not f.init or f.name in out:
                continue
            tp = hints.get(f.name, f.type)
            has_default, default = field_default(f)
            entry = {
                "parser": cls.__name__,
                "declaredIn": declared_in(cls, f.name),
                "type": value_type(tp),
                "pyType": type_name(tp),
                "default": default,
                "train": cls in train,
                "export": cls in infer,
            }
            if not has_default:
                entry["required"] = True
            c = choices(tp) or (KNOWN_VALUES[f.name]() if f.name in KNOWN_VALUES else None)
            if c is not None:
                entry["choices"] = jsonable(c)
            h = normalize_help(f.metadata.get("help"))
            if h:
                entry["help"] = h
            out[f.name] = entry
    return out, [c.__name__ for c in train], [c.__name__ for c in infer]


class _Recorder(dict):
    """A dict that notes every key the dataset parser looks up (`in`, [], .get)."""

    def __init__(self, data, seen):
        super().__init__(data)
        self._seen = seen

    def __contains__(self, key):
        self._seen.add(key)
        return super().__contains__(key)

    def __getitem__(self, key):
        self._seen.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._seen.add(key)
        return super().get(key, default)


def dataset_info_schema(data_parser):
    """The keys `get_dataset_list` reads from one dataset_info.json entry, found by probing it.

    A probe entry records every key the parser asks for; the source keys (where the data comes
    from) are found by giving each candidate in turn and seeing which `load_from` it yields.
    """
    attr_fields = {f.name: f for f in dataclasses.fields(data_parser.DatasetAttr)}

    def probe(entry):
        top, columns, tags = set(), set(), set()
        rec = _Recorder(entry, top)
        rec_columns = _Recorder({}, columns)
        rec_tags = _Recorder({}, tags)
        if "columns" in entry:
            dict.__setitem__(rec, "columns", rec_columns)
        if "tags" in entry:
            dict.__setitem__(rec, "tags", rec_tags)
        (attr,) = data_parser.get_dataset_list(["probe"], {"probe": rec})
        return attr, top, columns, tags

    attr, top, columns, tags = probe({"file_name": "probe.json", "columns": {}, "tags": {}})
    sources = {}
    candidates = sorted(k for k in top if k.endswith("_url") or k.endswith("_name"))
    for key in candidates:
        try:
            a, more, _, _ = probe({key: "probe"})
        except Exception:  # a key the parser asks about but cannot load from on its own
            continue
        if a.dataset_name == "probe":
            sources[key] = a.load_from
            top |= more
    options = sorted(k for k in top if k not in sources and k not in ("columns", "tags"))

    def with_defaults(keys):
        return {k: jsonable(attr_fields[k].default) if k in attr_fields else None for k in sorted(keys)}

    formatting = attr_fields["formatting"]
    return {
        "sources": dict(sorted(sources.items())),
        "options": with_defaults(options),
        "columns": with_defaults(columns),
        "tags": with_defaults(tags),
        "formatting": jsonable(choices(typing.get_type_hints(data_parser.DatasetAttr)["formatting"])),
        "formattingDefault": jsonable(formatting.default),
    }


def main():
    out = _stdout_to_stderr()
    from llamafactory.data import parser as data_parser
    from llamafactory.data.template import TEMPLATES
    from llamafactory.hparams import parser as parser_module

    args, train_classes, infer_classes = argument_fields(parser_module)
    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    result = {
        "versions": versions,
        "parsers": {"train": train_classes, "export": infer_classes},
        "args": args,
        "templates": sorted(TEMPLATES.keys()),
        "datasetInfo": dataset_info_schema(data_parser),
    }
    out.write(json.dumps(result, indent=1, sort_keys=False) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
