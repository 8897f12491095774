"""Files as they come from the field (issue 12): bare quotes in TSV, other encodings, other delimiters
and headerless files, common column names, a split without leakage and warnings that list rows.

The files are built from the rows in samples/ (Banking77, Twitter Financial News); see samples/README.md.
"""

import csv
import io
import json

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from datasets_app.ingest.columns import detect_mapping
from datasets_app.models import DatasetVersion
from tests.datasets.conftest import BANKING, OASST, TWITTER_TRAIN, stored_files
from tests.datasets.test_bad_input import first_error, refused


def upload(client, filename: str, content: bytes, **fields):
    payload = {"file": SimpleUploadedFile(filename, content), **fields}
    return client.post("/api/v1/datasets", payload, format="multipart")


def created(response) -> dict:
    assert response.status_code == 201, response.content[:600]
    return response.json()


def all_rows(version: DatasetVersion) -> list[dict]:
    rows = []
    for field in (version.normalized_file, version.validation_file):
        if field:
            with default_storage.open(field.name, "rb") as fh:
                rows += [json.loads(line) for line in fh]
    return rows


def banking_rows(n: int) -> list[tuple[str, str]]:
    with open(BANKING, encoding="utf-8", newline="") as fh:
        rows = [(r["category"], r["text"]) for r in csv.DictReader(fh)]
    out = []
    for i in range(n):  # more rows than the sample: repeat it with a row number, texts stay distinct
        label, text = rows[i % len(rows)]
        out.append((label, text if i < len(rows) else f"{text} (#{i})"))
    return out


def stray_quote_tsv(n: int, *, opens: int, closes: int) -> bytes:
    """`label<TAB>text_a`, no quoting: one text starts with '"', a later one ends with '"'."""
    rows = banking_rows(n)
    lines = ["label\ttext_a"]
    for i, (label, text) in enumerate(rows):
        if i == opens:
            text = f'"{text}'
        elif i == closes:
            text = f'{text}"'
        lines.append(f"{label}\t{text}")
    return ("\n".join(lines) + "\n").encode()


def test_an_unquoted_tsv_with_stray_quotes_imports_every_row(alice_client):
    content = stray_quote_tsv(200, opens=10, closes=150)
    body = created(upload(alice_client, "corpus.tsv", content))
    version = DatasetVersion.objects.get(pk=body["version"]["id"])
    assert version.row_count + version.validation_row_count == content.count(b"\n") - 1 == 200
    texts = {r["text"] for r in all_rows(version)}
    assert any(t.startswith('"') for t in texts) and any(t.endswith('"') for t in texts)
    assert body["report"]["stats"]["quoting"] == "none"
    assert "quoting" in [w["code"] for w in body["report"]["warnings"]]


def test_a_stray_quote_past_the_sniffed_head_is_read_again_without_quoting(alice_client):
    # ~2,000 rows (over 64 KB): the quotes are past the part of the file sniffed before reading.
    content = stray_quote_tsv(2000, opens=1500, closes=1700)
    assert content.index(b'\t"') > 64 * 1024
    body = created(upload(alice_client, "big.tsv", content))
    stats = body["report"]["stats"]
    assert stats["rows"] + stats["validation_rows"] == 2000 and stats["quoting"] == "none"
    quoting = next(w for w in body["report"]["warnings"] if w["code"] == "quoting")
    assert "line 1502" in quoting["message"]


def test_the_merge_case_with_csv_quoting_is_refused_naming_the_line(alice_client, media_root):
    content = stray_quote_tsv(200, opens=10, closes=150)
    response = upload(alice_client, "corpus.tsv", content, quoting="csv")
    refused(response, 422, "corpus.tsv", "line 12", "quoting=none")
    assert first_error(response)["code"] == "merged_rows"
    # A comma CSV is read with quoting in auto mode too: the merge is refused, never taken silently.
    lines = ["text,label"] + [f"plain text {i},{i % 2}" for i in range(10)]
    lines += ['"opening quote that CSV never closes,0', "a whole row caught inside,1", 'closing here",1']
    response = upload(alice_client, "bare.csv", ("\n".join(lines) + "\n").encode())
    refused(response, 422, "bare.csv", "line 12")
    assert first_error(response)["code"] == "merged_rows"
    assert not DatasetVersion.objects.exists() and stored_files(media_root) == []


@pytest.mark.parametrize(
    ("codec", "sample", "shown"),
    [
        ("latin-1", "Le café était très bon", "latin-1"),
        ("cp1252", "Le “café” coûte 3 €", "cp1252"),
        ("gbk", "这家银行的服务非常好，我很满意", None),
        ("utf-16", "Ünïcödé café 银行 — ok", "utf-16"),
    ],
)
def test_other_encodings_import_with_the_right_characters_and_the_encoding_shown(
    alice, alice_client, codec, sample, shown
):
    lines = ["text,label"] + [f"{sample} {i},{'ja' if i % 2 else 'nein'}" for i in range(40)]
    content = ("\n".join(lines) + "\n").encode(codec)
    body = created(upload(alice_client, f"{codec}.csv", content, validation_fraction="0"))
    version = DatasetVersion.objects.get(pk=body["version"]["id"])
    assert sorted(r["text"] for r in all_rows(version))[0] == f"{sample} 0"
    stats = body["report"]["stats"]
    if shown is not None:
        assert stats["encoding"] == shown
    assert stats["encoding_detected"] is True
    assert "encoding" in [w["code"] for w in body["report"]["warnings"]]
    client = Client()
    client.force_login(alice)
    page = client.get(f"/datasets/versions/{version.id}/").content.decode()
    assert stats["encoding_name"] in page


def test_an_explicit_encoding_wins_and_the_hash_is_that_of_the_utf8_content(alice_client):
    lines = ["text,label"] + [f"这家银行的服务 {i},{'好' if i % 2 else '差'}" for i in range(30)]
    text = "\n".join(lines) + "\n"
    gbk = created(upload(alice_client, "gbk.csv", text.encode("gbk"), encoding="gbk", name="one"))
    utf8 = created(upload(alice_client, "utf8.csv", text.encode("utf-8"), name="two"))
    assert gbk["report"]["stats"]["encoding"] == "gbk"
    assert gbk["version"]["sha256"] == utf8["version"]["sha256"]
    refused(
        upload(alice_client, "gbk.csv", text.encode("gbk"), encoding="klingon"),
        400,
        "klingon",
        field="encoding",
    )


def twitter_at_file(n: int = 120) -> bytes:
    with open(TWITTER_TRAIN, encoding="utf-8", newline="") as fh:
        usable = [r for r in csv.DictReader(fh) if "@" not in r["text"] and "\n" not in r["text"]]
    # The sample's first rows are bearish (0) and bullish (1): half of each.
    rows = [r for label in "01" for r in [x for x in usable if x["label"] == label][: n // 2]]
    names = {"0": "negative", "1": "positive", "2": "neutral"}
    return "".join(f"{r['text']}@{names[r['label']]}\n" for r in rows).encode()


def test_an_at_delimited_headerless_file_imports_with_the_given_columns(alice_client):
    content = twitter_at_file()
    body = created(
        upload(alice_client, "phrasebank.txt", content, delimiter="@", header="no", columns="text,label")
    )
    version = DatasetVersion.objects.get(pk=body["version"]["id"])
    assert version.row_count + version.validation_row_count == content.count(b"\n") == 120
    assert set(version.labels) == {"negative", "positive"}
    first_text = content.split(b"@", 1)[0].decode()
    assert first_text in {r["text"] for r in all_rows(version)}


def test_a_headerless_file_is_named_as_such_not_listed_as_columns(alice_client, media_root):
    response = upload(alice_client, "phrasebank.txt", twitter_at_file(), delimiter="@")
    refused(response, 422, "seems to have no header", "header=no")
    assert first_error(response)["field"] == "header"
    refused(upload(alice_client, "p.txt", twitter_at_file(), header="no"), 400, "columns", field="columns")
    assert not DatasetVersion.objects.exists() and stored_files(media_root) == []


@pytest.mark.parametrize(
    ("header", "text", "label", "pair"),
    [
        (["label", "text_a", "text_b"], "text_a", "label", "text_b"),
        (["text_a", "category"], "text_a", "category", None),
        (["sentence", "sentiment"], "sentence", "sentiment", None),
        (["review", "class"], "review", "class", None),
        (["content", "label"], "content", "label", None),
        (["utterance", "intent"], "utterance", "intent", None),
        (["query", "intent"], "query", "intent", None),
    ],
)
def test_the_field_s_column_names_are_found_without_options(header, text, label, pair):
    mapping = detect_mapping(header)
    assert (mapping.text, mapping.label, mapping.text_pair) == (text, label, pair)


def test_the_platform_split_keeps_identical_inputs_on_one_side(alice_client):
    base = banking_rows(300)
    rows = base + base[:120] + [(label, text) for label, text in base[:60]]  # many exact repeats
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["text", "category"])
    writer.writerows([(t, label) for label, t in rows])
    body = created(upload(alice_client, "dups.csv", out.getvalue().encode(), validation_fraction="0.2"))
    version = DatasetVersion.objects.get(pk=body["version"]["id"])
    assert body["report"]["stats"]["leakage"] == 0
    assert "leakage" not in [w["code"] for w in body["report"]["warnings"]]
    with default_storage.open(version.normalized_file.name, "rb") as fh:
        train = {json.loads(line)["text"] for line in fh}
    with default_storage.open(version.validation_file.name, "rb") as fh:
        validation = {json.loads(line)["text"] for line in fh}
    assert validation and not train & validation


def test_warnings_list_their_first_rows_with_line_numbers(alice_client):
    data = (
        "text,label\n"
        "the card arrived,    0\n"
        "where is my card,1\n"
        "the card arrived,    0\n"
        "top up failed,1\n"
        "top up failed,0\n" + "".join(f"row number {i},{i % 2}\n" for i in range(20))
    )
    body = created(upload(alice_client, "warn.csv", data.encode(), validation_fraction="0"))
    warnings = {w["code"]: w for w in body["report"]["warnings"]}
    dup = warnings["duplicates"]
    assert dup["details"]["rows"][0] == {"file": "warn.csv", "line": 4, "text": "the card arrived"}
    assert "line 4" in dup["message"]
    trimmed = warnings["trimmed_labels"]
    assert trimmed["count"] == 2 and "'    0' → '0'" in trimmed["message"]
    assert [r["line"] for r in trimmed["details"]["rows"]] == [2, 4]
    conflict = warnings["conflicting_labels"]
    assert {r["line"] for r in conflict["details"]["rows"]} == {5, 6}


def test_labels_conflicting_between_training_and_validation_files_are_counted(alice_client):
    train = "text,label\n" + "".join(f"text {i},{i % 2}\n" for i in range(20))
    valid = "text,label\ntext 0,1\ntext 1,1\nfresh text,0\n"
    payload = {
        "file": SimpleUploadedFile("train.csv", train.encode()),
        "validation_file": SimpleUploadedFile("valid.csv", valid.encode()),
    }
    body = created(alice_client.post("/api/v1/datasets", payload, format="multipart"))
    warnings = {w["code"]: w for w in body["report"]["warnings"]}
    assert warnings["train_validation_conflicts"]["count"] == 1
    assert warnings["train_validation_conflicts"]["details"]["rows"][0]["line"] == 2
    assert body["report"]["stats"]["train_validation_conflicts"] == 1


def test_chat_lengths_are_not_measured_with_the_encoder(alice_client):
    body = created(upload(alice_client, "chat.json", OASST.read_bytes()))
    warnings = {w["code"]: w for w in body["report"]["warnings"]}
    assert "no chat-capable base model is registered" in warnings["token_lengths_unchecked"]["message"]
    assert body["report"]["stats"]["tokens"] is None
