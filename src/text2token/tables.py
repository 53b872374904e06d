"""The tables the command line prints (rich): scores, tasks, tokens, search hits."""

from __future__ import annotations

from rich.table import Table


def _table(title: str, columns: tuple[tuple[str, str], ...]) -> Table:
    table = Table(title=title)
    for column, justify in columns:
        table.add_column(column, justify=justify)
    return table


def score_table(before: dict, after: dict) -> Table:
    """``train``: each before/after metric of the held-out articles and its change."""
    table = _table("held-out Wikipedia articles (dev split, not used for training)",
                   (("metric", "left"), ("before", "right"), ("after", "right"), ("change", "right")))
    for key in before:
        b, a = before[key], after.get(key, float("nan"))
        table.add_row(key, f"{b:.4f}", f"{a:.4f}", f"{a - b:+.4f}")
    return table


def task_table(title: str, rows, average: float | None = None) -> Table:
    """One row per task (task, type, metric, score), the average last: the eval and mteb commands."""
    table = _table(title, (("task", "left"), ("type", "left"), ("metric", "left"), ("score", "right")))
    for task, kind, metric, score in rows:
        table.add_row(task, kind, metric, f"{score:.4f}")
    if average is not None:
        table.add_row("[bold]average[/bold]", "", "", f"[bold]{average:.4f}[/bold]")
    return table


def snippet(text: str, width: int = 100) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def token_table(pairs: list[tuple[str, float]], top_k: int) -> Table:
    """``explain``: rank, token, probability."""
    table = _table(f"top {top_k} tokens", (("#", "right"), ("token", "left"), ("probability", "right")))
    for rank, (token, p) in enumerate(pairs, start=1):
        table.add_row(str(rank), repr(token), f"{p:.4f}")
    return table


def hits_table(hits, mode: str, query: str, tokens: int) -> Table:
    """``search``: rank, score, text, and the matched tokens for the modes that match tokens."""
    table = _table(f"{mode} search: {snippet(query, 60)}", (("#", "right"), ("score", "right"), ("text", "left")))
    if mode != "dense":
        table.add_column("matched tokens")
    for h in hits:
        row = [str(h.rank), f"{h.score:.4g}", snippet(h.text)]
        if mode != "dense":
            row.append(", ".join(f"{t!r} {c:.3g}" for t, c in h.tokens[:tokens]))
        table.add_row(*row)
    return table
