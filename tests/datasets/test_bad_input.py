"""Bad uploads through the API: each gets a clear message naming file, line and field, a fitting
status, and leaves no Dataset, no DatasetVersion, no stored file and no scratch file behind."""

import gzip
import io
import json
import random
import zipfile

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from datasets_app.models import Dataset, DatasetVersion
from tests.datasets.conftest import stored_files

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\x00" * 64


def upload(client, filename: str, content: bytes, **fields):
    payload = {"file": SimpleUploadedFile(filename, content), **fields}
    return client.post("/api/v1/datasets", payload, format="multipart")


@pytest.fixture
def nothing_stored(media_root, settings):
    def check():
        assert not Dataset.objects.exists()
        assert not DatasetVersion.objects.exists()
        assert stored_files(media_root) == []
        scratch = settings.TUNEFORGE_WORK_DIR / "ingest"
        assert not scratch.exists() or list(scratch.iterdir()) == []

    return check


def refused(response, status: int, *phrases: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.content[:500]
    error = response.json()["error"]
    for phrase in phrases:
        assert phrase in error["message"], (phrase, error["message"])
    if field is not None:
        assert error["field"] == field
    return error


def first_error(response) -> dict:
    return response.json()["error"]["details"]["report"]["errors"][0]


def test_it_rejects_an_empty_file(alice_client, nothing_stored):
    error = refused(upload(alice_client, "empty.csv", b""), 422, "empty.csv", "the file is empty")
    assert error["field"] == "file"
    nothing_stored()


def test_it_rejects_a_file_with_only_a_header(alice_client, nothing_stored):
    response = upload(alice_client, "header.csv", b"text,label\r\n")
    refused(response, 422, "header.csv", "header (text, label) but no data rows")
    assert first_error(response)["line"] == 2
    nothing_stored()


def test_it_rejects_a_png_renamed_to_csv(alice_client, nothing_stored):
    refused(upload(alice_client, "photo.csv", PNG), 422, "photo.csv", "PNG image")
    nothing_stored()


def test_utf16_without_a_bom_is_read_and_named(alice_client):
    content = "text,label\nhello there,a\ngood bye,b\n".encode("utf-16-le")
    response = upload(alice_client, "wide-le.csv", content, validation_fraction="0")
    assert response.status_code == 201, response.content[:300]
    assert response.json()["report"]["stats"]["encoding_name"] == "UTF-16 (little-endian)"


def test_bytes_in_no_recognizable_encoding_are_refused_naming_the_option(alice_client, nothing_stored):
    noise = bytes(random.Random(1).randrange(0x80, 0x100) for _ in range(300))
    response = upload(alice_client, "noise.csv", b"text,label\n" + noise + b",a\nhello,b\n")
    error = refused(response, 422, "noise.csv", "not UTF-8 text", "encoding option")
    assert "save the file as UTF-8" in error["message"]
    assert first_error(response)["line"] == 2
    nothing_stored()


def test_it_rejects_a_file_with_a_single_label(alice_client, nothing_stored):
    response = upload(alice_client, "one.csv", b"text,label\na,x\nb,x\nc,x\n")
    refused(response, 422, "one.csv", "1 distinct label (only 'x')", "at least 2 labels")
    assert first_error(response)["field"] == "label"
    nothing_stored()


def test_it_rejects_a_csv_without_a_label_column(alice_client, nothing_stored):
    response = upload(alice_client, "nolabel.csv", b"text,comment\nhello,fine\nbye,ok\n")
    refused(
        response,
        422,
        "nolabel.csv",
        "No label column found among the columns (text, comment)",
        "label_column",
    )
    assert first_error(response)["field"] == "label_column"
    nothing_stored()


def test_it_rejects_ragged_rows_with_their_lines(alice_client, nothing_stored):
    response = upload(alice_client, "ragged.csv", b"text,label\ngood,a\nbad,b,extra\nworse\nfine,b\n")
    refused(response, 422, "ragged.csv", "line 3", "expected 2 fields (text, label), found 3", "1 more")
    report = response.json()["error"]["details"]["report"]
    assert [(e["line"], e["row"]) for e in report["errors"]] == [(3, 2), (4, 3)]
    nothing_stored()


def test_it_rejects_an_unterminated_quote(alice_client, nothing_stored):
    response = upload(alice_client, "quote.csv", b'text,label\nfine,a\n"never closed,b\nmore,a\n')
    refused(response, 422, "quote.csv", "line 3", "unterminated quote")
    nothing_stored()


def test_it_stops_at_a_single_twenty_megabyte_line(alice_client, nothing_stored):
    content = b"text,label\n" + b"z" * (20 * 1024 * 1024) + b",a\nok,b\n"
    response = upload(alice_client, "huge-line.csv", content)
    refused(response, 422, "huge-line.csv", "line 2", "longer than the 8 MB limit per line")
    nothing_stored()


def test_it_rejects_jsonl_broken_at_line_57(alice_client, nothing_stored):
    lines = [json.dumps({"text": f"example {i}", "label": "ab"[i % 2]}) for i in range(100)]
    lines[56] = '{"text": "cut short", "label"'
    response = upload(alice_client, "broken.jsonl", ("\n".join(lines) + "\n").encode())
    refused(response, 422, "broken.jsonl", "line 57", "invalid JSON")
    assert first_error(response)["line"] == 57
    nothing_stored()


def test_it_rejects_a_chat_message_with_role_robot(alice_client, nothing_stored):
    content = (
        b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
        b'{"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "beep"}]}\n'
    )
    response = upload(alice_client, "chat.jsonl", content)
    refused(response, 422, "chat.jsonl", "line 2", "messages[1].role", "unknown role 'robot'")
    nothing_stored()


def test_it_rejects_a_label_column_that_is_all_empty(alice_client, nothing_stored):
    response = upload(alice_client, "blank.csv", b"text,label\nhello,\nbye,\nagain,  \n")
    refused(response, 422, "blank.csv", "label column 'label' is empty in every row (3 rows)")
    nothing_stored()


@pytest.mark.parametrize(
    ("filename", "maker", "what"),
    [
        ("data.zip", lambda raw: _zip(raw), "ZIP archive"),
        ("data.csv.gz", lambda raw: gzip.compress(raw), "gzip archive"),
        ("sneaky.csv", lambda raw: _zip(raw), "ZIP archive"),
    ],
)
def test_it_refuses_archives_without_opening_them(alice_client, nothing_stored, filename, maker, what):
    refused(
        upload(alice_client, filename, maker(b"text,label\na,x\nb,y\n")),
        422,
        filename,
        what,
        "Upload the uncompressed",
    )
    nothing_stored()


def _zip(raw: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data.csv", raw)
    return buffer.getvalue()


def test_a_declared_size_over_the_limit_is_refused_before_reading(alice_client, nothing_stored, settings):
    settings.TUNEFORGE_MAX_UPLOAD_BYTES = 100_000
    response = upload(alice_client, "big.csv", b"text,label\n" + b"word,a\n" * 40_000)
    error = refused(response, 413, "is larger than the upload limit of 97.7 KB")
    assert error["details"]["limit_bytes"] == 100_000
    nothing_stored()


def test_a_file_over_the_limit_is_refused_while_streaming(alice_client, nothing_stored, settings):
    # Under the limit plus form overhead, so only the streaming guard can catch it.
    settings.TUNEFORGE_MAX_UPLOAD_BYTES = 100_000
    response = upload(alice_client, "sly.csv", b"text,label\n" + b"word,a\n" * 15_000)
    refused(response, 413, "'sly.csv'", "larger than the upload limit")
    nothing_stored()


def test_a_path_in_the_file_name_is_stripped_and_nothing_lands_outside_the_team_prefix(
    alice_client, team, media_root, tmp_path
):
    response = upload(alice_client, "../../../etc/evil.csv", b"text,label\nhello,a\nbye,b\n")
    assert response.status_code == 201, response.content
    version = DatasetVersion.objects.get()
    assert version.source_filename == "evil.csv"
    files = stored_files(media_root)
    assert files and all(
        str(p.relative_to(media_root)).startswith(f"teams/{team.id}/datasets/") for p in files
    )
    assert not (tmp_path / "etc").exists()
    assert settings.MEDIA_ROOT == str(media_root)


def test_bad_upload_parameters_are_400_and_store_nothing(alice_client, nothing_stored):
    content = b"text,label\nhello,a\nbye,b\n"
    refused(
        upload(alice_client, "a.csv", content, validation_fraction="1.5"),
        400,
        "less than or equal to 0.9",
        field="validation_fraction",
    )
    refused(
        upload(alice_client, "a.csv", content, task="regression"), 400, "not a valid choice", field="task"
    )
    refused(
        upload(alice_client, "a.csv", content, label_names="[1, 2]"),
        400,
        "label_names must be a JSON object",
        field="label_names",
    )
    refused(
        upload(alice_client, "a.csv", content, tokenizer_model="/etc/passwd"),
        400,
        "Unknown tokenizer model '/etc/passwd'",
    )
    refused(
        upload(alice_client, "a.csv", content, text_column="body"), 422, "text_column 'body' is not a column"
    )
    refused(
        alice_client.post("/api/v1/datasets", {"name": "no file"}, format="multipart"),
        400,
        "No file",
        field="file",
    )
    nothing_stored()


def test_a_refused_oversize_upload_leaves_no_temporary_file(alice_client, nothing_stored, settings, tmp_path):
    uploads = tmp_path / "upload-tmp"
    uploads.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(uploads)
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024  # spill to a temporary file, as a 500 MB upload would
    settings.TUNEFORGE_MAX_UPLOAD_BYTES = 100_000
    small = SimpleUploadedFile("valid.csv", b"text,label\nhello,a\nbye,b\n")
    big = SimpleUploadedFile("sly.csv", b"text,label\n" + b"word,a\n" * 15_000)
    response = alice_client.post(
        "/api/v1/datasets", {"validation_file": small, "file": big}, format="multipart"
    )
    refused(response, 413, "larger than the upload limit")
    # `response` still holds the request (and its upload handlers): nothing may wait for GC.
    assert list(uploads.iterdir()) == []
    nothing_stored()


def test_deeply_nested_json_is_a_4xx_naming_file_and_line(alice_client, nothing_stored):
    good = json.dumps({"text": "fine", "label": "a"}) + "\n" + json.dumps({"text": "also", "label": "b"})
    deep = '{"text": "x", "label": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = upload(alice_client, "deep.jsonl", (good + "\n" + deep + "\n").encode())
    refused(response, 422, "deep.jsonl", "line 3", "nested too deeply")
    assert first_error(response)["line"] == 3
    array = "[" + good.replace("\n", ",") + "," + deep + "]"
    response = upload(alice_client, "deep.json", array.encode())
    refused(response, 422, "deep.json", "nested too deeply")
    assert first_error(response)["line"] == 1
    nothing_stored()
