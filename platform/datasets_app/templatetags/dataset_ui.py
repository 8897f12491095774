"""The version page's text of a dataset warning, in the reader's language.

The ingest stores each warning's English `message` (the API and older reports show it) and, beside
it, the `params` its text was made from; a warning without params (a report written before they
were kept, or free text such as the CSV reader's quoting reason) is shown as it was stored."""

from django import template
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

register = template.Library()

# By code, or "code.variant" where the English text has a variant (removed duplicates, chat data...).
WARNING_TEXTS = {
    "rare_labels": gettext_lazy("%(n)s label(s) have fewer than %(min)s training examples: %(labels)s"),
    "class_imbalance": gettext_lazy(
        "Heavy class imbalance: %(most)s has %(most_n)s examples, %(least)s has %(least_n)s (ratio %(ratio)s:1)."
    ),
    "label_case_variants": gettext_lazy(
        "%(n)s label(s) differ only in upper/lower case and count as different labels: %(groups)s. Rename "
        "them with label_names if they mean the same."
    ),
    "encoding": gettext_lazy(
        "%(file)s is not UTF-8; it was read as %(encoding)s (detected) and converted to UTF-8. If characters "
        "look wrong, choose the encoding option."
    ),
    "multiline_rows": gettext_lazy(
        "%(n)s row(s) of %(file)s contain line breaks inside quoted texts, so the file has more lines than "
        "rows (first at lines %(lines)s)."
    ),
    "trimmed_labels": gettext_lazy(
        "%(n)s label(s) in %(file)s had spaces around them that were removed (%(pairs)s)."
    ),
    "duplicates": gettext_lazy(
        "%(n)s training row(s) repeat an earlier row exactly (upload with deduplicate to drop them)."
    ),
    "duplicates.removed": gettext_lazy(
        "%(n)s training row(s) repeat an earlier row exactly; they were removed."
    ),
    "validation_duplicates": gettext_lazy("%(n)s validation row(s) repeat an earlier row exactly."),
    "validation_duplicates.removed": gettext_lazy(
        "%(n)s validation row(s) repeat an earlier row exactly; they were removed."
    ),
    "conflicting_labels": gettext_lazy("%(n)s text(s) appear with different labels in the training data."),
    "leakage": gettext_lazy(
        "%(n)s validation row(s) have the same input as a training row (train/validation overlap inflates "
        "validation scores)."
    ),
    "train_validation_conflicts": gettext_lazy(
        "%(n)s validation row(s) have the same input as a training row but a different label."
    ),
    "too_long": gettext_lazy(
        "%(train)s training and %(validation)s validation texts are longer than %(max_length)s tokens for "
        "%(model)s (longest: %(longest)s); they will be truncated in training."
    ),
    "too_long.chat": gettext_lazy(
        "%(train)s training and %(validation)s validation conversations are longer than %(max_length)s tokens "
        "for %(model)s (longest: %(longest)s); they will be truncated in training."
    ),
    "no_validation": gettext_lazy("The validation split is empty."),
    "no_validation.few": gettext_lazy(
        "The validation split is empty (too few rows for the chosen fraction)."
    ),
    "validation_only_labels": gettext_lazy("%(n)s label(s) occur only in the validation data: %(labels)s."),
    "unmapped_labels": gettext_lazy(
        "%(file)s: %(n)s label(s) are not in label_names and were kept as they are: %(labels)s."
    ),
}


@register.filter
def warning_text(warning) -> str:
    if not isinstance(warning, dict):
        return ""
    params = warning.get("params")
    if not isinstance(params, dict):
        return warning.get("message", "")
    variant = params.get("variant")
    text = WARNING_TEXTS.get(f"{warning.get('code')}.{variant}" if variant else warning.get("code") or "")
    if text is None:
        return warning.get("message", "")
    try:
        shown = str(text) % params
    except (KeyError, TypeError, ValueError):
        return warning.get("message", "")
    rows = (warning.get("details") or {}).get("rows") or []
    if rows:
        listed = "; ".join(
            _("%(file)s line %(line)s: %(text)s")
            % {"file": r.get("file"), "line": r.get("line"), "text": repr(r.get("text"))}
            for r in rows
            if isinstance(r, dict)
        )
        shown += " " + _("First rows: %(rows)s.") % {"rows": listed}
    return shown
