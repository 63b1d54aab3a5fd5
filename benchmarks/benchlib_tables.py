"""benchlib's figures and tables: py-spy profile summaries, percentiles and the
aligned tables every script prints.

Every name here is re-exported by benchlib (scripts use benchlib.<name>)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def collapsed_summary(path: Path, *, top: int = 30) -> dict[str, Any]:
    """Inclusive and own sample shares per function from py-spy's collapsed stacks.

    Each line is `frame;frame;...;leaf count`; a frame is `function (file:line)`.
    """
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame_name(f) for f in stack.split(";")]
        for name in set(frames):
            inclusive[name] = inclusive.get(name, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count

    def share(table: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(table.items(), key=lambda kv: kv[1], reverse=True)[:top]
        return [(name, n / total) for name, n in ranked] if total else []

    return {
        "samples": total,
        "inclusive": share(inclusive),
        "own": share(own),
        "inclusive_all": {k: v / total for k, v in inclusive.items()} if total else {},
    }


def _frame_name(frame: str) -> str:
    # "order_place (orders/services/checkout.py:57)" -> "order_place (orders/services/checkout.py)"
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0].rstrip(")")
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


APP_PACKAGES = (
    "orders/",
    "catalog/",
    "fulfillment/",
    "config/",
    "risk/",
    "distribution/",
)


def print_profile(summary: dict[str, Any], *, title: str, top: int = 25) -> None:
    print(f"\n{title}: {summary['samples']} samples")
    print("  inclusive (the function or anything it called):")
    for name, frac in summary["inclusive"][:top]:
        print(f"    {frac:6.1%}  {name}")
    print("  own time (the leaf frame):")
    for name, frac in summary["own"][:top]:
        print(f"    {frac:6.1%}  {name}")
    app = sorted(
        (
            (n, f)
            for n, f in summary["inclusive_all"].items()
            if n.split(" (", 1)[1].startswith(APP_PACKAGES)
        ),
        key=lambda nf: nf[1],
        reverse=True,
    )
    print("  application functions, inclusive:")
    for name, frac in app[:top]:
        print(f"    {frac:6.1%}  {name}")


def percentile(values: Sequence[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_table(
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    left: int = 0,
) -> None:
    """A Markdown table; the first `left` columns (text) left-aligned, the rest right."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
        for i, h in enumerate(headers)
    ]
    print(f"\n{title}")
    print(
        "| "
        + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
        + " |"
    )
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print(
            "| "
            + " | ".join(
                c.ljust(w) if i < left else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
            + " |"
        )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
