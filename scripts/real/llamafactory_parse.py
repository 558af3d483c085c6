"""Runs LLaMA-Factory's own argument parsing on configs, one JSON request per stdin line.

Request:  {"command": "train" | "export", "yaml": "<the config file's text>",
           "files": {"<name>": "<text>"}}  (optional: the other files of the config's folder)
Reply:    {"ok": true, "keys": [...]}  or  {"ok": false, "error": "<ExceptionType>: <message>"}

What runs is exactly what `llamafactory-cli train|export <file>.yaml` runs before it touches a model:
  - `read_args()` loads the YAML file with OmegaConf, as the CLI does with `sys.argv[1]`;
  - train:  `get_train_args()` -> HfArgumentParser over ModelArguments, DataArguments, (Seq2Seq)
            TrainingArguments, FinetuningArguments, GeneratingArguments (unknown keys raise), every
            dataclass __post_init__ (LLaMA-Factory's and transformers'), then LLaMA-Factory's
            cross-argument checks (stage/predict/eval dataset/quantization/…) and extra-dependency
            checks (e.g. predict_with_generate needs jieba/nltk/rouge);
  - export: `get_infer_args()` -> the same without TrainingArguments, plus its checks. (That is the
            parser `export_model` calls first.)
A `deepspeed:` path into the config's folder (/config/deepspeed.json in the pod) is pointed at the
same file written beside the YAML, as the pod's ConfigMap mount has it, so transformers reads the
DeepSpeed config tunepipe generated (DeepSpeed itself comes from the real-tools DeepSpeed layer).
What does NOT run: loading the tokenizer/model/dataset (so paths are never opened), the two checks
`export_model` makes after parsing (export_dir set; no adapter with export_quantization_bit), and
anything later. One stand-in: transformers refuses `bf16: true` when the machine has no bf16 GPU
("Your setup doesn't support bf16/gpu."); the configs target the cluster's GPUs (Ampere or newer),
so the bf16 capability probe answers yes. Nothing else about the machine is faked.
"""

import json
import os
import sys
import tempfile
import traceback

# The CLI honours ALLOW_EXTRA_ARGS=1 by ignoring unknown keys; these parses must see the default.
os.environ.pop("ALLOW_EXTRA_ARGS", None)
os.environ.pop("USE_MCA", None)


def main():
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the libraries log to stdout; the protocol owns the real one
    sys.stdout = sys.stderr

    import transformers.training_args as hf_training_args
    from llamafactory.hparams import parser as lf_parser

    # The GPU stand-in described above (both modules imported the probe by name).
    hf_training_args.is_torch_bf16_gpu_available = lambda *a, **k: True
    lf_parser.is_torch_bf16_gpu_available = lambda *a, **k: True

    proto.write(json.dumps({"ready": True}) + "\n")
    proto.flush()
    workdir = tempfile.mkdtemp(prefix="lf-parse-")
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        path = os.path.join(workdir, "config.yaml")
        with open(path, "w") as f:
            f.write(request["yaml"])
        try:
            sys.argv = ["llamafactory-cli", path]
            args = lf_parser.read_args()
            files = request.get("files") or {}
            for name, text in files.items():
                with open(os.path.join(workdir, name), "w") as f:
                    f.write(text)
            if isinstance(args, dict) and isinstance(args.get("deepspeed"), str) and os.path.basename(args["deepspeed"]) in files:
                args["deepspeed"] = os.path.join(workdir, os.path.basename(args["deepspeed"]))
            if request["command"] == "train":
                lf_parser.get_train_args(args)
            elif request["command"] == "export":
                lf_parser.get_infer_args(args)
            else:
                raise ValueError(f"unknown command {request['command']!r}")
            reply = {"ok": True, "keys": sorted(args.keys()) if isinstance(args, dict) else None}
        except Exception as e:  # the parser's verdict, reported to the test
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            if os.environ.get("TUNEPIPE_DEBUG"):
                traceback.print_exc()
        proto.write(json.dumps(reply) + "\n")
        proto.flush()


if __name__ == "__main__":
    main()
