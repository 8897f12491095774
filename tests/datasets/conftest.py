"""Datasets tests: each test stores into its own media folder, so 'nothing stored' is checkable."""

from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
BANKING = SAMPLES / "banking77" / "train_300.csv"
TWITTER_TRAIN = SAMPLES / "twitter_financial_news_sentiment" / "sent_train_300.csv"
TWITTER_VALID = SAMPLES / "twitter_financial_news_sentiment" / "sent_valid_100.csv"
OASST = SAMPLES / "oasst1_zh" / "oaast_sft_zh_120.json"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = str(root)
    settings.TUNEFORGE_WORK_DIR = tmp_path / "work"
    return root


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())
