"""Cursor pagination by id, the shape both API faces use: {"object": "list", "data", "has_more"}.

`after` names the last id the client saw; newer rows first. A cursor on ids (not offsets) stays
correct while rows are added, which matters for live event streams.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet

from common.errors import InvalidInput

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


@dataclass
class Page:
    items: list[Any]
    has_more: bool


def parse_limit(raw: str | None, *, default: int = DEFAULT_LIMIT) -> int:
    limit = parse_int(raw, name="limit", default=default)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, got {limit}.", field="limit")
    return limit


def paginate_after(queryset: QuerySet, *, after: str | None, limit: int, order: str = "-created_at") -> Page:
    """Rows after the row `after` in `order` (then id, as tie-breaker), at most `limit` of them."""
    descending = order.startswith("-")
    order_field = order.lstrip("-")
    queryset = queryset.order_by(order, "-pk" if descending else "pk")
    if after:
        anchor = queryset.model.objects.filter(pk=after).values(order_field, "pk").first()
        if anchor is None or not queryset.filter(pk=after).exists():
            raise InvalidInput(f"No such object for after={after!r} in this list.", field="after")
        value, pk = anchor[order_field], anchor["pk"]
        if descending:
            queryset = queryset.filter(
                Q(**{f"{order_field}__lt": value}) | Q(**{order_field: value, "pk__lt": pk})
            )
        else:
            queryset = queryset.filter(
                Q(**{f"{order_field}__gt": value}) | Q(**{order_field: value, "pk__gt": pk})
            )
    rows = list(queryset[: limit + 1])
    return Page(items=rows[:limit], has_more=len(rows) > limit)


def list_response_body(
    page: Page, data: list[Any], *, id_of: Callable[[Any], str] | None = None
) -> dict[str, Any]:
    """`id_of` gives the id clients see (and pass back as `after`) where it is not the pk."""
    body = {"object": "list", "data": data, "has_more": page.has_more}
    if page.items:
        id_of = id_of or (lambda item: str(item.pk))
        body["first_id"] = id_of(page.items[0])
        body["last_id"] = id_of(page.items[-1])
    return body


def parse_int(raw: str | None, *, name: str, default: int | None = None) -> int | None:
    """An integer query parameter: `default` when absent or empty, a 400 naming it when not a number."""
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be an integer, got {raw!r}.", field=name) from None
