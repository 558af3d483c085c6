#!/usr/bin/env python3
"""Build the tiny Llama-3-architecture model the real-tools tier trains, merges and evaluates on CPU.

usage: make-tiny-model.py --datasets DIR --out DIR [--seed N]

Nothing is downloaded. The tokenizer is a byte-level BPE trained here on the text of every data file
under DIR (the repository's datasets/), with Llama-3's chat special tokens appended after the learned
vocabulary, so LLaMA-Factory's `llama3` template (<|start_header_id|>, <|end_header_id|>, <|eot_id|>,
stop words <|eot_id|>/<|eom_id|>) finds every token it needs and adds none. The model is a
LlamaForCausalLM with random weights from a fixed seed, saved in float32 (LLaMA-Factory then trains in
float32 on a CPU and exports in bfloat16, as it would a full-size fp32 checkpoint).

Same inputs + same pinned packages -> byte-identical files: the BPE trainer runs single-threaded,
files are read in sorted order, and the weights come from torch's seeded CPU generator.
"""
import argparse
import csv
import hashlib
import json
import os
import sys

# Single-threaded tokenizer training: its merge order must not depend on thread scheduling.
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402

# Llama-3's special tokens, by their Llama-3 names. In Llama-3 they follow the 128,000 learned tokens;
# here they follow the learned vocabulary the same way.
BOS = "<|begin_of_text|>"
END_OF_TEXT = "<|end_of_text|>"
START_HEADER = "<|start_header_id|>"
END_HEADER = "<|end_header_id|>"
EOT = "<|eot_id|>"
EOM = "<|eom_id|>"
PAD = "<|finetune_right_pad_id|>"
PYTHON_TAG = "<|python_tag|>"
SPECIAL_TOKENS = [
    BOS,
    END_OF_TEXT,
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    PAD,
    "<|reserved_special_token_2|>",
    START_HEADER,
    END_HEADER,
    EOM,
    EOT,
    PYTHON_TAG,
]

# The Llama-3 chat format: a header per turn, each turn closed by <|eot_id|>.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + (message['content'] | trim) + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

# Shape of the model: Llama-3's (grouped-query attention, SwiGLU MLP, untied head), shrunk so a
# training step takes a fraction of a second on two busy CPU cores, long enough for a test to kill
# the trainer between two checkpoints and short enough for a whole train/merge/evaluate cycle in
# a few minutes.
LEARNED_VOCAB = 2048
HIDDEN = 128
INTERMEDIATE = 352
LAYERS = 2
HEADS = 4
KV_HEADS = 2
CONTEXT = 2048


def strings_in(value):
    """Every string inside a JSON value, in document order."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)
    elif isinstance(value, dict):
        for key in value:
            yield from strings_in(value[key])


def corpus(datasets_dir):
    """The text of every data file under `datasets_dir` (descriptors excluded), files in sorted order."""
    paths = []
    for root, dirs, files in os.walk(datasets_dir):
        dirs.sort()
        for name in sorted(files):
            if name in ("dataset.yaml", "dataset.yml") or name.startswith("."):
                continue
            paths.append(os.path.join(root, name))
    texts = []
    for path in sorted(paths):
        with open(path, encoding="utf-8") as f:
            raw = f.read()
        if path.endswith(".jsonl"):
            for line in raw.splitlines():
                if line.strip():
                    texts.extend(strings_in(json.loads(line)))
        elif path.endswith(".json"):
            texts.extend(strings_in(json.loads(raw)))
        elif path.endswith((".csv", ".tsv")):
            delimiter = "\t" if path.endswith(".tsv") else ","
            for row in csv.reader(raw.splitlines(), delimiter=delimiter):
                texts.extend(cell for cell in row if cell)
        else:
            texts.append(raw)
    texts = [t for t in texts if t.strip()]
    if not texts:
        sys.exit(f"make-tiny-model: no text found under {datasets_dir}")
    return paths, texts


def train_tokenizer(texts):
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=LEARNED_VOCAB,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    # Appended after training, so their ids come after every learned token, as in Llama-3.
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOT,
        pad_token=PAD,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (BOS, EOT, PAD)],
        chat_template=CHAT_TEMPLATE,
        model_max_length=CONTEXT,
        clean_up_tokenization_spaces=False,
    )


def build_model(tokenizer, seed):
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        head_dim=HIDDEN // HEADS,
        max_position_embeddings=CONTEXT,
        rope_theta=500000.0,
        rms_norm_eps=1e-5,
        # Wider than transformers' 0.02: with so narrow a hidden size, 0.02 leaves the LM head's logits
        # too small for LoRA (which never touches the head) to move the loss in a few dozen steps.
        initializer_range=0.1,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.convert_tokens_to_ids(BOS),
        eos_token_id=[tokenizer.convert_tokens_to_ids(EOT), tokenizer.convert_tokens_to_ids(END_OF_TEXT)],
        pad_token_id=tokenizer.convert_tokens_to_ids(PAD),
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )
    return model


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", required=True, help="folder whose data files train the tokenizer")
    parser.add_argument("--out", required=True, help="model folder to write (must not exist or be empty)")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    paths, texts = corpus(args.datasets)
    tokenizer = train_tokenizer(texts)
    model = build_model(tokenizer, args.seed)

    os.makedirs(args.out, exist_ok=True)
    tokenizer.save_pretrained(args.out)
    model.save_pretrained(args.out, safe_serialization=True)

    files = sorted(f for f in os.listdir(args.out) if os.path.isfile(os.path.join(args.out, f)))
    summary = {
        "architecture": "LlamaForCausalLM",
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "learned_vocab": len(tokenizer) - len(SPECIAL_TOKENS),
        "special_tokens": {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS},
        "seed": args.seed,
        "tokenizer_corpus": {"files": len(paths), "texts": len(texts), "characters": sum(len(t) for t in texts)},
        "files": {f: sha256_of(os.path.join(args.out, f)) for f in files},
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__, "tokenizers": __import__("tokenizers").__version__},
    }
    print(json.dumps(summary, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
