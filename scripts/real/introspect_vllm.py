"""`vllm serve`'s own argument parser, as JSON, and a way to run it on an argv.

  python introspect_vllm.py flags     every option of the serve parser: canonical long flag, aliases,
                                      type, default, choices, deprecated, first paragraph of help
  python introspect_vllm.py serve     a line-oriented server: each stdin line is a JSON list (the
                                      argv after `vllm serve`); each reply line says whether the
                                      parser accepted it and, if not, argparse's own message

The parser is built the way `vllm` builds it in vllm/entrypoints/cli/main.py: a FlexibleArgumentParser
with the `serve` subcommand's subparser_init, then the subcommand's own validate(). Nothing is
served: no engine, no model, no GPU. Output is deterministic (declaration order, no machine paths).
"""

import argparse
import contextlib
import io
import json
import os
import re
import sys

os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")


def _stdout_to_stderr():
    real = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return real


def pin_platform():
    """Use vLLM's CPU platform: this machine has no GPU, and the CUDA platform cannot even be imported
    without the driver (libcuda.so.1). Building the parser needs *a* platform only because some config
    defaults are instances (DeviceConfig asks the platform for its device type); no flag, alias, type
    or choice depends on it. test/real/vllm checks that claim against a CUDA-typed stand-in."""
    import vllm.platforms as platforms

    if os.environ.get("TUNEPIPE_VLLM_PLATFORM") == "cuda-typed":
        # The stand-in for the check above: the platform-less base class, claiming to be CUDA.
        from vllm.platforms.interface import UnspecifiedPlatform

        class CudaTyped(UnspecifiedPlatform):
            device_type = "cuda"
            device_name = "cuda"

        platforms._current_platform = CudaTyped()
    else:
        from vllm.platforms.cpu import CpuPlatform

        platforms._current_platform = CpuPlatform()


def build_parser():
    pin_platform()
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.entrypoints.utils import cli_env_setup
    from vllm.utils import FlexibleArgumentParser

    cli_env_setup()
    parser = FlexibleArgumentParser(description="vLLM CLI")
    subparsers = parser.add_subparsers(required=False, dest="subparser")
    command = ServeSubcommand()
    serve_parser = command.subparser_init(subparsers)
    serve_parser.set_defaults(dispatch_function=command.cmd)
    return parser, serve_parser, command


def _inner(fn):
    """The function a vLLM type wrapper (optional_type, parse_type) closes over, if any."""
    for cell in getattr(fn, "__closure__", None) or ():
        value = cell.cell_contents
        if callable(value):
            return value
    return None


def type_label(action) -> str:
    if isinstance(action, argparse.BooleanOptionalAction):
        return "boolean"
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return "flag"
    fn = action.type
    label = None
    for _ in range(4):
        if fn is None:
            label = "string"
        elif fn is int:
            label = "integer"
        elif fn is float:
            label = "number"
        elif fn is str:
            label = "string"
        elif getattr(fn, "__module__", "") == "json" and fn.__name__ == "loads":
            label = "json"
        else:
            name = getattr(fn, "__name__", type(fn).__name__)
            if name in ("_optional_type", "_parse_type"):
                fn = _inner(fn)
                continue
            label = {
                "human_readable_int": "integer",
                "union_dict_and_str": "json_or_string",
                "parse_dataclass": "json",
                # argparse's type=bool: any non-empty value is true (only on deprecated flags).
                "bool": "bool",
            }.get(name, name)
        break
    if action.nargs in ("+", "*") or isinstance(action.nargs, int):
        label += "[]"
    return label


def jsonable(value):
    if value is argparse.SUPPRESS:
        return None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if hasattr(value, "value") and hasattr(type(value), "__members__"):
        return jsonable(value.value)
    return str(value)


def first_paragraph(text):
    if not text:
        return None
    para = re.split(r"\n\s*\n", str(text).strip())[0]
    return re.sub(r"\s+", " ", para).replace("%%", "%").strip() or None


def _quantization_methods():
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS

    return list(QUANTIZATION_METHODS)


def _load_formats():
    import typing

    from vllm.model_executor.model_loader import LoadFormats

    return list(typing.get_args(LoadFormats))


# Options whose annotation vLLM only imports for type checking, so argparse sees a plain `str`; the
# engine looks the value up in these registries at start-up and rejects anything else.
ENGINE_VALUES = {"--quantization": _quantization_methods, "--load-format": _load_formats}


def flags():
    _, serve_parser, _ = build_parser()
    from vllm.utils import FlexibleArgumentParser

    deprecated = FlexibleArgumentParser._deprecated
    out = {}
    positional = []
    for action in serve_parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if not action.option_strings:
            positional.append({"dest": action.dest, "nargs": action.nargs})
            continue
        longs = [s for s in action.option_strings if s.startswith("--")]
        if isinstance(action, argparse.BooleanOptionalAction):
            longs = [s for s in longs if not s.startswith("--no-")] or longs
        name = longs[0] if longs else action.option_strings[0]
        aliases = [s for s in action.option_strings if s != name and not (isinstance(action, argparse.BooleanOptionalAction) and s.startswith("--no-"))]
        entry = {"type": type_label(action), "default": jsonable(action.default)}
        if action.choices is not None:
            entry["choices"] = jsonable(list(action.choices))
        elif isinstance(action.metavar, (list, tuple)):
            # vLLM turns `Literal[...] | str` into a metavar listing the known values: argparse then
            # takes any string, and the engine config rejects an unknown one at start-up.
            entry["values"] = jsonable(list(action.metavar))
        if action in deprecated or "[DEPRECATED]" in str(action.help or ""):
            entry["deprecated"] = True
        if aliases:
            entry["aliases"] = aliases
        h = first_paragraph(action.help)
        if h:
            entry["help"] = h
        if name in ENGINE_VALUES and "choices" not in entry and "values" not in entry:
            entry["values"] = ENGINE_VALUES[name]()
        if name in out:
            raise SystemExit(f"two serve options are both named {name}")
        out[name] = entry
    return {"positional": positional, "flags": out}


def serve():
    """Parse requests until stdin closes. argparse reports errors by exiting; that is caught."""
    proto = _stdout_to_stderr()
    parser, _, command = build_parser()
    proto.write(json.dumps({"ready": True}) + "\n")
    proto.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        argv = json.loads(line)
        err = io.StringIO()
        reply = {"ok": True}
        try:
            with contextlib.redirect_stderr(err):
                args = parser.parse_args(["serve", *argv])
                command.validate(args)
            reply["model"] = getattr(args, "model_tag", None)
            reply["parsed"] = {k: jsonable(v) for k, v in sorted(vars(args).items()) if k != "dispatch_function"}
        except SystemExit as e:
            reply = {"ok": False, "exit": e.code, "error": err.getvalue().strip().splitlines()[-1:] and err.getvalue().strip().splitlines()[-1]}
        except Exception as e:  # validate() raises plain exceptions (TypeError/ValueError)
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        proto.write(json.dumps(reply) + "\n")
        proto.flush()


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "flags"
    if mode == "flags":
        # vLLM reads its help texts only when "--help" is on the command line (arg_utils.NEEDS_HELP,
        # evaluated at import); the table wants them, so look like a help run while importing.
        sys.argv = [sys.argv[0], "--help"]
        proto = _stdout_to_stderr()
        result = flags()
        import importlib.metadata

        result["version"] = importlib.metadata.version("vllm")
        proto.write(json.dumps(result, indent=1) + "\n")
        proto.flush()
    elif mode == "serve":
        serve()
    else:
        raise SystemExit(f"unknown mode {mode!r}; use 'flags' or 'serve'")


if __name__ == "__main__":
    main()
