"""A tiny random BERT with a WordPiece vocabulary built from the sample texts: real transformers
files, trained for real by the engine in a few seconds on a CPU, no downloads."""

from __future__ import annotations

import csv
import io
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BANKING_TRAIN = REPO / "samples" / "banking77" / "train_4intents.csv"
BANKING_TEST = REPO / "samples" / "banking77" / "test_4intents.csv"


def banking_rows(path: Path = BANKING_TRAIN) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [{"text": row["text"], "label": row["category"]} for row in csv.DictReader(fh)]


def build_tiny_bert(out_dir: Path, *, hidden_size: int = 64, layers: int = 2) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    texts = [r["text"] for r in banking_rows(BANKING_TRAIN) + banking_rows(BANKING_TEST)]
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=600, special_tokens=specials))
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]", model_max_length=64)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=hidden_size, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=2 * hidden_size, max_position_embeddings=64, pad_token_id=0)
    out_dir.mkdir(parents=True, exist_ok=True)
    BertModel(config).save_pretrained(out_dir)  # the engine adds a head sized to the labels
    fast.save_pretrained(out_dir)
    return out_dir


def _csv(rows: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["text", "label"])
    writer.writerows([row["text"], row["label"]] for row in rows)
    return out.getvalue().encode()


def make_dataset_version(team, *, n_train: int = 80, n_valid: int = 16, name: str = "banking", status: str = "ready",
                         repeat: int = 1):
    """A classification dataset version made by the datasets app's own upload service from the
    Banking77 sample (`n_valid` rows of its test split as the validation file; `repeat` copies the
    training rows, for long epochs). `status` other than ready is set afterwards, for refusal tests."""
    from django.core.files.base import ContentFile

    from datasets_app.models import DatasetVersion
    from datasets_app.services import UploadOptions, dataset_create_from_upload

    train = ContentFile(_csv(banking_rows()[:n_train] * repeat), name="train.csv")
    valid = ContentFile(_csv(banking_rows(BANKING_TEST)[:n_valid]), name="valid.csv") if n_valid else None
    outcome = dataset_create_from_upload(
        team=team, user=None, file=train, filename="train.csv", name=name, validation_file=valid,
        validation_filename="valid.csv" if valid else None,
        options=UploadOptions(task="classification", validation_fraction=0.0),
    )
    version = outcome.version
    if status != DatasetVersion.Status.READY:
        DatasetVersion.objects.filter(pk=version.pk).update(status=status)
        version.refresh_from_db()
    return version
