"""Rendering a VerifyReport: Markdown for reports/, a short rich table for the terminal."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table as RichTable

from ..report import md_table
from .model import CHECKS, Check, VerifyReport

ICON = {"pass": "✅ pass", "fail": "❌ FAIL", "warn": "⚠️ warn", "skip": "⏭ skip"}
STYLE = {"pass": "green", "fail": "bold red", "warn": "yellow", "skip": "dim"}


def _order(c: Check) -> tuple:
    names = list(CHECKS)
    return (names.index(c.name) if c.name in names else len(names), c.table or "")


def _grouped(report: VerifyReport) -> list[tuple[str, str, int, list[Check]]]:
    """Per check name: worst status, number of checks, the non-passing ones."""
    out = []
    rank = {"fail": 3, "warn": 2, "pass": 1, "skip": 0}
    for name in list(CHECKS) + sorted({c.name for c in report.checks} - set(CHECKS)):
        cs = [c for c in report.checks if c.name == name]
        if not cs:
            continue
        worst = max(cs, key=lambda c: rank[c.status]).status
        out.append((name, worst, len(cs), [c for c in cs if c.status in ("fail", "warn")]))
    return out


def render_markdown(report: VerifyReport) -> str:
    lines = [
        f"# replicator verify — {'OK' if report.ok else 'FAILED'}",
        "",
        f"- started: {report.started_at.isoformat()}",
        f"- master: `{report.master}`",
        f"- replica: `{report.replica}`",
        f"- deep content comparison: {'yes' if report.deep else 'no (use --deep)'}",
        f"- read-only role required: {'yes' if report.require_readonly_role else 'no'}",
        f"- values of differing rows: {'shown' if report.values_shown else 'hidden (keys and column names only; `--show-values` shows them)'}",
        f"- checks: {report.counts['pass']} pass, {report.counts['fail']} fail, "
        f"{report.counts['warn']} warn, {report.counts['skip']} skip",
        "",
        "## Summary",
        "",
        md_table(["check", "status", "checks", "what it verifies"],
                 [[n, ICON[s], k, CHECKS.get(n, "")] for n, s, k, _ in _grouped(report)]),
        "",
    ]
    problems = sorted((c for c in report.checks if c.status in ("fail", "warn")), key=_order)
    if problems:
        lines += ["## Findings", ""]
        for c in problems:
            lines.append(f"### {ICON[c.status]} {c.name}{' — ' + c.table if c.table else ''}")
            lines += ["", c.summary, ""]
            lines += _evidence_md(c)
    lines += ["## All checks", "",
              md_table(["check", "table", "status", "summary"],
                       [[c.name, c.table or "", c.status, c.summary] for c in sorted(report.checks, key=_order)]),
              ""]
    lines += ["## Statements sent to the master", "",
              md_table(["count", "kind", "allowed", "statement"],
                       [[a["count"], a["kind"], "yes" if a["allowed"] else "REFUSED", _short(a["statement"], 160)]
                        for a in report.audit]),
              ""]
    return "\n".join(lines)


def _evidence_md(c: Check) -> list[str]:
    ev = c.evidence
    out: list[str] = []
    if c.name == "content" and ev.get("differences"):
        rows = []
        for d in ev["differences"][:50]:
            key = ", ".join(f"{k}={v}" for k, v in d["key"].items())
            values = d.get("values", "")
            shown = "hidden" if values is None else _short(json.dumps(values, ensure_ascii=False), 200)
            rows.append([key, d["kind"], ", ".join(d.get("columns", [])), shown])
        out += [md_table(["key", "difference", "columns", "values (master → replica)"], rows), ""]
    elif c.name == "foreign_keys" and ev.get("examples"):
        keys = list(ev["examples"][0])
        out += [md_table(keys, [[e.get(k) for k in keys] for e in ev["examples"]]), ""]
    elif c.name in ("schema", "schema_snapshot") and ev.get("changes"):
        out += [md_table(["kind", "object", "detail"], [[x["kind"], x["object"], x["detail"]] for x in ev["changes"][:50]]), ""]
    rest = {k: v for k, v in ev.items() if k not in ("differences", "examples", "changes")}
    if rest:
        out += ["<details><summary>evidence</summary>", "", "```json",
                json.dumps(rest, indent=2, default=str, ensure_ascii=False), "```", "", "</details>", ""]
    return out


def _short(s: Any, n: int) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def render_terminal(report: VerifyReport, console: Console | None = None) -> None:
    console = console or Console()
    t = RichTable(title=f"replicator verify: {'[green]OK[/]' if report.ok else '[bold red]FAILED[/]'}",
                  show_lines=False)
    t.add_column("check")
    t.add_column("status")
    t.add_column("n", justify="right")
    t.add_column("findings", overflow="fold")
    for name, status, n, problems in _grouped(report):
        notes = "; ".join(f"{c.table + ': ' if c.table else ''}{c.summary}" for c in problems[:4])
        if len(problems) > 4:
            notes += f"; … {len(problems) - 4} more"
        t.add_row(name, f"[{STYLE[status]}]{status}[/]", str(n), _short(notes, 400))
    console.print(t)
