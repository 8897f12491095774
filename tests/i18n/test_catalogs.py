"""The Chinese catalogs are complete, well-formed, compiled and current: every message translated
(none fuzzy), the same placeholders as the English, the committed .mo files saying exactly what the
.po files say, and no UI string in the code that the catalog lacks."""

from __future__ import annotations

import gettext
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

from tests.i18n.po import Entry, messages, parse_po

ROOT = Path(__file__).resolve().parents[2]
LC_MESSAGES = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES"
DOMAINS = ["django", "djangojs"]
# What `make messages` scans (the Makefile's I18N_IGNORE leaves the rest out).
SOURCE_DIRS = ["platform", "finetune", "workers", "serving", "templates", "static"]
IGNORED = ["finetune/engine", "*.egg-info"]
PLACEHOLDER = re.compile(r"%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[sdifrx]|\{(\w+)\}")


def _label(entry: Entry) -> str:
    return (
        f"{entry.msgid!r}"
        + (f" (context {entry.msgctxt!r})" if entry.msgctxt else "")
        + f", line {entry.line}"
    )


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_message_is_translated_and_none_is_fuzzy(domain):
    path = LC_MESSAGES / f"{domain}.po"
    entries = parse_po(path)
    header = entries[0]
    assert header.msgid == "" and "fuzzy" not in header.flags, "the header is marked fuzzy"
    assert "Language: zh_Hans" in header.msgstr[""] and "nplurals=1" in header.msgstr[""]

    found = messages(path)
    untranslated = [_label(e) for e in found if not e.translated]
    fuzzy = [_label(e) for e in found if "fuzzy" in e.flags]
    obsolete = [e.msgid for e in parse_po(path) if e.obsolete]

    assert found, f"{path} has no messages"
    assert not untranslated, f"untranslated in {path.name}: {untranslated}"
    assert not fuzzy, f"fuzzy in {path.name}: {fuzzy}"
    assert not obsolete, f"obsolete (#~) entries left in {path.name}: {obsolete}"


@pytest.mark.parametrize("domain", DOMAINS)
def test_translations_keep_the_placeholders_of_the_english(domain):
    wrong = []
    for entry in messages(LC_MESSAGES / f"{domain}.po"):
        wanted = sorted(PLACEHOLDER.findall(entry.msgid_plural or entry.msgid))
        for text in entry.msgstr.values():
            if sorted(PLACEHOLDER.findall(text)) != wanted:
                wrong.append((entry.msgid, text))
            if "python-format" in entry.flags and text.replace("%%", "").count("%") != len(wanted):
                wrong.append((entry.msgid, text))
    assert not wrong, wrong


def _expected_catalog(path: Path) -> dict:
    """What GNUTranslations should hold once the .po is compiled: context\\x04msgid keys, and
    (msgid, n) keys for plural forms."""
    catalog = {}
    for entry in messages(path):
        key = f"{entry.msgctxt}\x04{entry.msgid}" if entry.msgctxt is not None else entry.msgid
        if entry.msgid_plural is not None:
            for index, text in entry.msgstr.items():
                catalog[(key, int(index))] = text
        else:
            catalog[key] = entry.msgstr[""]
    return catalog


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_committed_mo_says_what_the_po_says(domain):
    po, mo = LC_MESSAGES / f"{domain}.po", LC_MESSAGES / f"{domain}.mo"
    assert mo.exists(), f"{mo} is missing: run `make messages` and commit it"
    with mo.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    catalog = {key: value for key, value in compiled._catalog.items() if key != ""}  # "" is the header
    expected = _expected_catalog(po)

    assert len(catalog) == len(expected), (
        f"{mo.name} has {len(catalog)} messages, {po.name} {len(expected)}: run `make messages`"
    )
    stale = sorted(str(key) for key in expected if catalog.get(key) != expected[key])
    assert not stale, f"{mo.name} is out of date for: {stale[:10]} — run `make messages` and commit the .mo"


def test_django_reads_the_catalog_at_runtime():
    from django.utils import translation

    with translation.override("zh-hans"):
        assert translation.gettext("Datasets") == "数据集"
        assert translation.pgettext("current team", "active") == "当前"
        assert (
            translation.ngettext("%(n)s blocking error", "%(n)s blocking errors", 3) % {"n": 3}
            == "3 个阻断性错误"
        )
    with translation.override("en"):
        assert translation.gettext("Datasets") == "Datasets"


@pytest.mark.skipif(
    shutil.which("xgettext") is None or shutil.which("msgmerge") is None,
    reason="needs GNU gettext's xgettext and msgmerge (apt-get install gettext)",
)
@pytest.mark.parametrize("domain", DOMAINS)
def test_the_catalog_has_every_string_the_code_marks(domain, tmp_path):
    """makemessages over a copy of the sources (symlinked) finds no message that the committed
    catalog lacks: a string wrapped for translation without running `make messages` fails here."""
    for name in SOURCE_DIRS:
        (tmp_path / name).symlink_to(ROOT / name)
    target = tmp_path / "locale" / "zh_Hans" / "LC_MESSAGES"
    target.mkdir(parents=True)
    shutil.copy(LC_MESSAGES / f"{domain}.po", target / f"{domain}.po")

    before = os.getcwd()
    os.chdir(tmp_path)
    try:
        with override_settings(LOCALE_PATHS=[tmp_path / "locale"]):
            call_command(
                "makemessages",
                locale=["zh_Hans"],
                domain=domain,
                symlinks=True,
                ignore_patterns=IGNORED,
                add_location="file",
                no_obsolete=True,
                verbosity=0,
            )
    finally:
        os.chdir(before)

    # Entries the code no longer uses do no harm; `make messages` drops them on the next run.
    committed = {e.key for e in messages(LC_MESSAGES / f"{domain}.po")}
    current = {e.key for e in messages(target / f"{domain}.po")}
    assert current, "makemessages found no string at all"
    assert not current - committed, (
        f"not in the catalog yet (run `make messages`, translate): {current - committed}"
    )


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="needs GNU gettext's msgfmt")
@pytest.mark.parametrize("domain", DOMAINS)
def test_msgfmt_accepts_the_catalog(domain):
    result = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", os.devnull, str(LC_MESSAGES / f"{domain}.po")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "untranslated" not in result.stderr and "fuzzy" not in result.stderr, result.stderr
