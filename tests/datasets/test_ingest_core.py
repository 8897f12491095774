"""The Django-free ingestion core: formats, detection, validation messages, masking, splitting, export."""

import io
import json
from pathlib import Path

import pytest

from datasets_app.ingest.columns import MappingError, detect_mapping
from datasets_app.ingest.export import csv_lines, histogram, neutralize
from datasets_app.ingest.pii import iban_ok, luhn_ok, mask_pii
from datasets_app.ingest.pipeline import IngestOptions, Source, ingest
from datasets_app.ingest.report import MAX_LISTED_ERRORS, IngestFailed
from tests.datasets.conftest import BANKING, OASST, TWITTER_TRAIN, TWITTER_VALID


def run(
    tmp_path: Path,
    data: bytes | Path,
    name: str = "data.csv",
    validation: bytes | None = None,
    validation_name: str = "valid.csv",
    **options,
):
    raw = data.read_bytes() if isinstance(data, Path) else data
    source = Source(io.BytesIO(raw), name)
    val = Source(io.BytesIO(validation), validation_name) if validation is not None else None
    work = tmp_path / f"work{len(list(tmp_path.iterdir()))}"
    work.mkdir()
    return ingest(train=source, validation=val, options=IngestOptions(**options), workdir=work)


def failure(tmp_path, data, name="data.csv", **options) -> IngestFailed:
    with pytest.raises(IngestFailed) as caught:
        run(tmp_path, data, name, **options)
    return caught.value


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def classification_csv(n: int = 40, *, labels=("pos", "neg"), header="text,label") -> bytes:
    lines = [header] + [f"sample text number {i},{labels[i % len(labels)]}" for i in range(n)]
    return ("\n".join(lines) + "\n").encode()


# --- the real data sets ------------------------------------------------------------------------


def test_banking77_is_read_with_its_category_column_and_split_stratified(tmp_path):
    result = run(tmp_path, BANKING, "train_300.csv")
    assert result.task == "classification"
    assert result.column_mapping == {"text": "text", "label": "category", "text_pair": None}
    assert result.row_count + result.validation_row_count == 300
    assert result.validation_row_count == 30
    first = rows(result.train_path)[0]
    assert first == {
        "text": "I've transferred money into my account but the balance is the same",
        "label": "balance_not_updated_after_bank_transfer",
    }
    # Stratified: labels with a single example stay in training.
    assert result.label_counts["age_limit"] == 1
    assert "age_limit" not in result.validation_label_counts
    codes = [w["code"] for w in result.report["warnings"]]
    assert "rare_labels" in codes and "class_imbalance" in codes


def test_the_twitter_files_import_with_crlf_line_ends_and_integer_labels_as_strings(tmp_path):
    result = run(
        tmp_path,
        TWITTER_TRAIN,
        "sent_train_300.csv",
        validation=TWITTER_VALID.read_bytes(),
        validation_name="sent_valid_100.csv",
    )
    assert (result.row_count, result.validation_row_count) == (300, 100)
    assert result.labels == ["0", "1", "2"]
    assert all(not r["text"].endswith("\r") for r in rows(result.train_path))
    assert rows(result.train_path)[0]["label"] == "0"
    warning = next(w for w in result.report["warnings"] if w["code"] == "validation_only_labels")
    assert warning["details"]["labels"] == ["2"]


def test_label_names_rename_the_twitter_labels(tmp_path):
    result = run(
        tmp_path,
        TWITTER_VALID,
        "sent_valid_100.csv",
        label_names={"0": "bearish", "1": "bullish", "2": "neutral"},
    )
    assert set(result.labels) == {"bearish", "bullish", "neutral"}


def test_alpaca_json_becomes_chat_messages_with_history_and_input(tmp_path):
    data = json.dumps(
        [
            {"instruction": "Translate", "input": "hello", "output": "你好", "history": [["hi", "hey"]]},
            {"instruction": "Say yes", "input": "", "output": "yes", "history": []},
            {"instruction": "Be brief", "output": "ok", "system": "You are terse."},
        ],
        ensure_ascii=False,
    ).encode()
    result = run(tmp_path, data, "sft.json", validation_fraction=0)
    assert result.task == "chat_sft"
    converted = rows(result.train_path)
    assert converted[0] == {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hey"},
            {"role": "user", "content": "Translate\n\nhello"},
            {"role": "assistant", "content": "你好"},
        ]
    }
    assert converted[1]["messages"] == [
        {"role": "user", "content": "Say yes"},
        {"role": "assistant", "content": "yes"},
    ]
    assert converted[2]["messages"][0] == {"role": "system", "content": "You are terse."}


def test_the_oasst_sample_is_read_as_chat(tmp_path):
    result = run(tmp_path, OASST, "oaast_sft_zh_120.json")
    assert result.task == "chat_sft"
    assert result.row_count + result.validation_row_count == 120
    assert result.column_mapping["format"] == "alpaca"


# --- formats and detection ---------------------------------------------------------------------


def test_tsv_and_semicolon_files_have_their_delimiter_detected(tmp_path):
    tsv = b"sentence\tintent\nhello, there\tgreet\nbye now\tleave\nhi\tgreet\nsee you\tleave\n"
    result = run(tmp_path, tsv, "data.tsv", validation_fraction=0)
    assert rows(result.train_path)[0] == {"text": "hello, there", "label": "greet"}
    semi = b"utterance;class\nhello, there;greet\nbye;leave\n"
    result = run(tmp_path, semi, "data.csv", validation_fraction=0)
    assert result.report["stats"]["delimiter"] == ";"
    assert rows(result.train_path)[0]["text"] == "hello, there"


def test_quoted_newlines_a_bom_and_crlf_are_handled(tmp_path):
    data = '\ufefftext,label\r\n"first line\r\nsecond line",a\r\n"say ""hi""",b\r\n'.encode()
    result = run(tmp_path, data, validation_fraction=0)
    assert rows(result.train_path) == [
        {"text": "first line\r\nsecond line", "label": "a"},
        {"text": 'say "hi"', "label": "b"},
    ]
    assert result.report["stats"]["encoding"] == "utf-8-sig"


@pytest.mark.parametrize(
    ("header", "text_col", "label_col"),
    [
        ("tweet,sentiment", "tweet", "sentiment"),
        ("Utterance,Intent", "Utterance", "Intent"),
        ("content,class", "content", "class"),
        ("id,sentence,category", "sentence", "category"),
    ],
)
def test_columns_are_detected_by_common_names(header, text_col, label_col):
    mapping = detect_mapping(header.split(","))
    assert (mapping.text, mapping.label) == (text_col, label_col)


def test_column_overrides_win_and_must_name_a_real_column():
    mapping = detect_mapping(["body", "topic", "label"], text="body", label="topic")
    assert (mapping.text, mapping.label) == ("body", "topic")
    with pytest.raises(MappingError) as caught:
        detect_mapping(["text", "label"], label="category")
    assert "label_column 'category' is not a column" in caught.value.message


def test_sentence_pairs_keep_their_second_text(tmp_path):
    data = b"sentence1,sentence2,label\na cat,a feline,same\na dog,a car,different\n"
    result = run(tmp_path, data, validation_fraction=0)
    assert rows(result.train_path)[0] == {"text": "a cat", "text_pair": "a feline", "label": "same"}


def test_multilabel_jsonl_rows_keep_sorted_label_lists(tmp_path):
    data = b'{"text": "a", "labels": ["y", "x"]}\n{"text": "b", "labels": ["x"]}\n{"text": "c", "labels": ["z"]}\n'
    result = run(tmp_path, data, "data.jsonl", validation_fraction=0)
    assert result.task == "multilabel_classification"
    assert rows(result.train_path)[0] == {"text": "a", "labels": ["x", "y"]}
    assert result.label_counts == {"x": 2, "y": 1, "z": 1}


def test_chat_jsonl_is_kept_as_messages(tmp_path):
    data = (
        b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n' * 3
    )
    result = run(tmp_path, data, "chat.jsonl", validation_fraction=0)
    assert result.task == "chat_sft"
    assert rows(result.train_path)[0]["messages"][1] == {"role": "assistant", "content": "hello"}


# --- blocking errors name the line and the field -------------------------------------------------


def test_invalid_json_is_reported_with_its_line(tmp_path):
    lines = [json.dumps({"text": f"t{i}", "label": "ab"[i % 2]}) for i in range(80)]
    lines[56] = '{"text": "broken", "label": '
    exc = failure(tmp_path, ("\n".join(lines) + "\n").encode(), "data.jsonl")
    assert exc.report["error_count"] == 1
    error = exc.report["errors"][0]
    assert error["line"] == 57 and error["code"] == "invalid_json"
    assert "line 57" in exc.message and "invalid JSON" in exc.message


def test_a_row_missing_its_text_or_label_is_an_error_naming_line_and_field(tmp_path):
    exc = failure(tmp_path, b"text,label\nhello,a\n,b\nthere,\nok,b\nfine,a\n")
    assert [(e["line"], e["row"], e["field"], e["code"]) for e in exc.report["errors"]] == [
        (3, 2, "text", "missing_text"),
        (4, 3, "label", "missing_label"),
    ]
    assert "line 3, field 'text': the text is empty." in exc.message
    data = b'{"text": "a", "label": "x"}\n{"text": "b"}\n{"label": "y"}\n{"text": "c", "label": "y"}\n'
    exc = failure(tmp_path, data, "data.jsonl")
    assert [(e["line"], e["field"], e["code"]) for e in exc.report["errors"]] == [
        (2, "label", "missing_label"),
        (3, "text", "missing_text"),
    ]


def test_an_unknown_chat_role_names_the_message(tmp_path):
    data = (
        b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
        b'{"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "beep"}]}\n'
    )
    exc = failure(tmp_path, data, "chat.jsonl")
    error = exc.report["errors"][0]
    assert (error["line"], error["field"]) == (2, "messages[1].role")
    assert "unknown role 'robot'" in error["message"]


def test_a_conversation_without_an_assistant_turn_is_an_error(tmp_path):
    data = b'{"messages": [{"role": "system", "content": "be kind"}, {"role": "user", "content": "hi"}]}\n'
    exc = failure(tmp_path, data, "chat.jsonl")
    assert exc.report["errors"][0]["code"] == "no_assistant_turn"


def test_only_the_first_hundred_errors_are_listed_with_the_total(tmp_path):
    lines = ["text,label"] + [f"t{i},{'ab'[i % 2]},extra" for i in range(250)]
    exc = failure(tmp_path, ("\n".join(lines) + "\n").encode())
    assert exc.report["error_count"] == 250
    assert len(exc.report["errors"]) == MAX_LISTED_ERRORS
    assert exc.report["errors_truncated"] is True
    assert "expected 2 fields (text, label), found 3" in exc.report["errors"][0]["message"]
    assert "and 249 more blocking errors" in exc.message


def test_a_text_over_the_character_cap_is_refused_per_row(tmp_path):
    data = b"text,label\n" + b"x" * 2000 + b",a\nshort,b\nother,a\n"
    exc = failure(tmp_path, data, max_text_chars=1000)
    assert exc.report["errors"][0]["code"] == "text_too_long"
    assert exc.report["errors"][0]["line"] == 2


def test_a_line_over_the_line_cap_stops_reading_without_loading_it(tmp_path):
    data = b"text,label\n" + b"y" * 50_000 + b",a\n"
    exc = failure(tmp_path, data, max_line_bytes=10_000)
    error = exc.report["errors"][0]
    assert (error["code"], error["line"]) == ("line_too_long", 2)


def test_a_non_utf8_line_deep_in_the_file_is_reported_with_its_number(tmp_path):
    head = b"text,label\n" + b"".join(b"row %d padding padding padding,a\n" % i for i in range(3000))
    data = head + "caf\u00e9 au lait,b\n".encode("latin-1")
    exc = failure(tmp_path, data)
    error = exc.report["errors"][0]
    assert error["line"] == 3002 and "not valid UTF-8" in error["message"]


# --- warnings ----------------------------------------------------------------------------------


def test_duplicates_are_counted_and_optionally_removed(tmp_path):
    data = classification_csv(20) + b"sample text number 0,pos\nsample text number 1,neg\n"
    kept = run(tmp_path, data, validation_fraction=0)
    assert kept.row_count == 22
    assert next(w for w in kept.report["warnings"] if w["code"] == "duplicates")["count"] == 2
    dropped = run(tmp_path, data, validation_fraction=0, deduplicate=True)
    assert dropped.row_count == 20
    assert dropped.report["stats"]["duplicates_removed"] == 2


def test_overlap_between_training_and_validation_files_is_reported(tmp_path):
    valid = b"text,label\nsample text number 3,neg\nsomething new,pos\n"
    result = run(tmp_path, classification_csv(10), validation=valid)
    leak = next(w for w in result.report["warnings"] if w["code"] == "leakage")
    assert leak["count"] == 1


def test_texts_longer_than_the_tokenizer_limit_are_counted(tmp_path):
    class WordCounter:
        name, max_length, specials = "words", 12, 2

        def lengths(self, texts):
            return [len(t.split()) + 2 for t in texts]

    long_text = " ".join(["word"] * 30)
    data = f"text,label\n{long_text},a\nshort,b\n{long_text} more,b\nok,a\n".encode()
    result = run(tmp_path, data, validation_fraction=0, token_counter=lambda task: WordCounter())
    assert result.report["stats"]["tokens"]["too_long"] == 2
    warning = next(w for w in result.report["warnings"] if w["code"] == "too_long")
    assert "longer than 12 tokens for words" in warning["message"]


# --- splitting and hashing -----------------------------------------------------------------------


def test_the_split_is_reproducible_for_a_seed_and_changes_with_it(tmp_path):
    data = classification_csv(200, labels=("a", "b", "c", "d"))
    first, again = run(tmp_path, data, seed=7), run(tmp_path, data, seed=7)
    assert first.sha256 == again.sha256
    assert rows(first.validation_path) == rows(again.validation_path)
    other = run(tmp_path, data, seed=8)
    assert other.sha256 != first.sha256
    assert first.validation_row_count == 20
    assert first.validation_label_counts == {"a": 5, "b": 5, "c": 5, "d": 5}


def test_the_content_hash_ignores_formatting_but_not_content(tmp_path):
    a = run(tmp_path, b"text,label\nhello,x\nbye,y\n", validation_fraction=0)
    b = run(tmp_path, b'\xef\xbb\xbftext,label\r\n"hello",x\r\nbye,y\r\n', validation_fraction=0)
    c = run(tmp_path, b"text,label\nhello,x\nbye,z\n", validation_fraction=0)
    assert a.sha256 == b.sha256 != c.sha256


# --- PII masking -------------------------------------------------------------------------------


def test_pii_is_replaced_by_typed_placeholders_and_counted():
    counts: dict[str, int] = {}
    text = (
        "Mail jane.doe@example.com or call +44 20 7946 0958; card 4111 1111 1111 1111, "
        "IBAN GB82 WEST 1234 5698 7654 32, from 192.168.0.7"
    )
    assert mask_pii(text, counts) == "Mail [EMAIL] or call [PHONE]; card [CARD], IBAN [IBAN], from [IP]"
    assert counts == {"email": 1, "phone": 1, "card": 1, "iban": 1, "ip": 1}


def test_numbers_that_fail_the_checksums_are_left_alone():
    counts: dict[str, int] = {}
    text = "order 4111 1111 1111 1112 and GB82 WEST 1234 5698 7654 33 on 2024-01-15 for $1,234.56"
    assert mask_pii(text, counts) == text
    assert counts == {}
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89370400440532013000") and not iban_ok("DE89370400440532013001")


def test_masking_at_import_reports_counts_per_kind(tmp_path):
    data = b"text,label\ncontact me at bob@example.org,a\nmy ip is 10.0.0.1,b\nnothing here,a\n"
    result = run(tmp_path, data, validation_fraction=0, pii_masking=True)
    assert rows(result.train_path)[0]["text"] == "contact me at [EMAIL]"
    assert result.report["masked"] == {"email": 1, "ip": 1}


# --- export ------------------------------------------------------------------------------------


def test_csv_export_neutralizes_spreadsheet_formulas():
    assert neutralize("=SUM(A1)") == "'=SUM(A1)"
    assert neutralize("@cmd") == "'@cmd" and neutralize("-1+2") == "'-1+2" and neutralize("\tx") == "'\tx"
    assert neutralize("plain") == "plain"
    text = "".join(csv_lines([{"text": '=HYPERLINK("x")', "label": "+a"}], "classification"))
    assert text == 'text,label\r\n"\'=HYPERLINK(""x"")",\'+a\r\n'


def test_histogram_bins_have_round_widths():
    bins = histogram([1, 5, 12, 19, 40])
    assert bins[0] == {"start": 0, "end": 5, "count": 1}  # 41 / 20 bins → width 5
    assert sum(b["count"] for b in bins) == 5


# --- the streaming JSON array reader ---------------------------------------------------------------


def test_json_array_records_spanning_read_chunks_are_parsed_with_their_lines():
    from datasets_app.ingest.readers import iter_json_array

    records = [{"instruction": f"question {i} " + "字" * 50, "output": "answer\n" * 3} for i in range(40)]
    raw = json.dumps(records, ensure_ascii=False, indent=2).encode()
    parsed = list(iter_json_array(io.BytesIO(raw), max_element_bytes=1 << 20, chunk_chars=64))
    assert [value for _line, value in parsed] == records
    assert parsed[0][0] == 2 and parsed[1][0] == 6  # `[` is line 1; each record takes 4 lines


@pytest.mark.parametrize(
    ("raw", "line", "phrase"),
    [
        (b'[\n{"a": 1}\n{"a": 2}\n]', 3, "expected ',' or ']'"),
        (b'[\n{"a": 1},\n{"a": tru}\n]', 3, "invalid JSON"),
        (b'[\n{"a": 1},\n{"a": 2}\n', 4, "not closed"),
        (b'{"a": 1}', 1, "expected a JSON array"),
    ],
)
def test_json_array_syntax_errors_name_their_line(raw, line, phrase):
    from datasets_app.ingest.readers import iter_json_array
    from datasets_app.ingest.report import FatalIngestError

    with pytest.raises(FatalIngestError) as caught:
        list(iter_json_array(io.BytesIO(raw), max_element_bytes=1 << 20, chunk_chars=8))
    assert caught.value.line == line and phrase in caught.value.message


def test_a_json_record_over_the_size_cap_stops_reading(tmp_path):
    raw = b'[{"instruction": "' + b"a" * 50_000 + b'", "output": "b"}]'
    exc = failure(tmp_path, raw, "big.json", max_line_bytes=10_000)
    assert exc.report["errors"][0]["code"] == "record_too_large"


def test_a_labels_column_in_csv_holds_pipe_separated_labels(tmp_path):
    data = b"text,labels\nrefund please,billing|urgent\nhello,greeting\nlate card,urgent|card\n"
    result = run(tmp_path, data, validation_fraction=0)
    assert result.task == "multilabel_classification"
    assert rows(result.train_path)[0] == {"text": "refund please", "labels": ["billing", "urgent"]}
    assert result.label_counts["urgent"] == 2


def test_csv_is_refused_for_a_chat_dataset(tmp_path):
    exc = failure(tmp_path, b"text,label\nhi,a\nbye,b\n", task="chat_sft")
    assert "chat data must be JSONL" in exc.message
