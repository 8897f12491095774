"""Tiny random models with locally trained tokenizers, so engine tests need no downloads and run in seconds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

REPO = Path(__file__).resolve().parents[2]
BANKING_TRAIN = REPO / "samples" / "banking77" / "train_4intents.csv"
BANKING_TEST = REPO / "samples" / "banking77" / "test_4intents.csv"

# Full fine-tuning of the tiny BERT on the 4-intent rows (batch 16) at a learning rate far too high,
# reached after a short warmup: the first steps learn, the later ones wreck the model, so validation
# accuracy peaks mid-run. Shared by the engine's best-checkpoint test and the job page's.
PEAK_MID_RUN_HYPERPARAMETERS = {
    "n_epochs": 6,
    "batch_size": 16,
    "learning_rate": 0.05,
    "warmup_ratio": 0.3,
    "eval_every_steps": 3,
    "early_stopping_patience": None,
    "early_stopping_metric": "eval_accuracy",
}

CHAT_TOPICS = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("What colour is the sky on a clear day?", "The sky is blue on a clear day."),
    ("Name a fruit that is yellow.", "A banana is a yellow fruit."),
    ("What do bees make?", "Bees make honey."),
    ("How many days are in a week?", "There are seven days in a week."),
    ("What is frozen water called?", "Frozen water is called ice."),
    ("Which animal says moo?", "A cow says moo."),
]


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def banking_rows(path: Path = BANKING_TRAIN) -> list[dict[str, str]]:
    return [{"text": r["text"], "label": r["category"]} for r in read_csv_rows(path)]


def chat_rows() -> list[dict]:
    rows = []
    for i, (q, a) in enumerate(CHAT_TOPICS * 3):
        messages = [{"role": "system", "content": "You are a helpful assistant."}] if i % 2 else []
        messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        if i % 3 == 0:  # multi-turn histories
            q2, a2 = CHAT_TOPICS[(i + 1) % len(CHAT_TOPICS)]
            messages += [{"role": "user", "content": q2}, {"role": "assistant", "content": a2}]
        rows.append({"messages": messages})
    return rows


def _corpus() -> list[str]:
    texts = [r["text"] for r in read_csv_rows(BANKING_TRAIN)] + [
        r["text"] for r in read_csv_rows(BANKING_TEST)
    ]
    for q, a in CHAT_TOPICS:
        texts += [q, a]
    texts += ["<|system|> <|user|> <|assistant|> You are a helpful assistant."]
    return texts


def build_tiny_bert(out_dir: Path, *, hidden_size: int = 64, layers: int = 2) -> Path:
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        [t.lower() for t in _corpus()],
        trainers.WordLevelTrainer(
            vocab_size=900, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        ),
    )
    tok.normalizer = __import__("tokenizers").normalizers.Lowercase()
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=128,
        pad_token_id=0,
    )
    model = BertModel(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    fast.save_pretrained(out_dir)
    return out_dir


def build_tiny_gpt2(out_dir: Path) -> Path:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = __import__("tokenizers").decoders.ByteLevel()
    tok.train_from_iterator(
        _corpus(),
        trainers.BpeTrainer(
            vocab_size=800,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>", model_max_length=256
    )
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=tok.get_vocab_size(),
        n_embd=64,
        n_layer=2,
        n_head=2,
        n_positions=256,
        bos_token_id=0,
        eos_token_id=0,
    )
    model = GPT2LMHeadModel(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    fast.save_pretrained(out_dir)
    return out_dir
