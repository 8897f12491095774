"""Geometry of the small inline-SVG charts on the version page (no JavaScript, no CDN)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int
    secondary: int = 0
    secondary_width: float = 0.0

    @property
    def end(self) -> float:
        return self.x + self.width

    @property
    def value_x(self) -> float:
        return self.x + self.width + self.secondary_width + 4


def label_bars(rows: list[dict], *, width: int = 640, label_width: int = 260, row_height: int = 18) -> dict:
    """Horizontal bars, one row per label: training count, and validation count stacked after it."""
    top = max((r["train"] + r["validation"] for r in rows), default=0) or 1
    plot = width - label_width - 60
    bars = []
    for i, row in enumerate(rows):
        bars.append(
            Bar(
                x=label_width,
                y=i * row_height + 2,
                width=plot * row["train"] / top,
                height=row_height - 5,
                label=row["label"],
                value=row["train"],
                secondary=row["validation"],
                secondary_width=plot * row["validation"] / top,
            )
        )
    return {
        "width": width,
        "height": max(len(rows), 1) * row_height + 4,
        "label_x": label_width - 6,
        "bars": bars,
    }


def histogram_bars(bins: list[dict], *, max_length: int | None, width: int = 640, height: int = 200) -> dict:
    """Vertical bars of a token-length histogram, with the tokenizer's limit marked when in range."""
    margin_left, margin_bottom = 40, 24
    plot_w, plot_h = width - margin_left - 10, height - margin_bottom - 10
    top = max((b["count"] for b in bins), default=0) or 1
    slot = plot_w / max(len(bins), 1)
    bars = [
        Bar(
            x=margin_left + i * slot + 1,
            y=10 + plot_h * (1 - b["count"] / top),
            width=max(slot - 2, 1),
            height=plot_h * b["count"] / top,
            label=f"{b['start']}–{b['end'] - 1}",
            value=b["count"],
        )
        for i, b in enumerate(bins)
    ]
    limit_x = None
    if bins and max_length is not None and bins[0]["start"] <= max_length <= bins[-1]["end"]:
        span = bins[-1]["end"] - bins[0]["start"]
        limit_x = margin_left + plot_w * (max_length - bins[0]["start"]) / span
    ticks = []
    if bins:
        step = max(1, len(bins) // 5)
        ticks = [{"x": margin_left + i * slot, "label": bins[i]["start"]} for i in range(0, len(bins), step)]
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "limit_x": limit_x,
        "top": top,
        "axis_y": 10 + plot_h,
        "tick_y": 10 + plot_h + 16,
        "left": margin_left,
        "top_label_x": margin_left - 4,
        "ticks": ticks,
    }
