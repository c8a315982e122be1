"""Writing reports: Markdown for people, JSON for machines, side by side under `reports/`."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel


def utc_stamp(at: datetime | None = None) -> str:
    """A filename-safe UTC timestamp, e.g. 20261121T093000Z."""
    return (at or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_json(path: Path, data: BaseModel | dict | list) -> Path:
    if isinstance(data, BaseModel):
        text = data.model_dump_json(indent=2)
    else:
        text = json.dumps(data, indent=2, default=_default, ensure_ascii=False)
    return write_text(path, text + "\n")


def write_report(directory: Path, stem: str, markdown: str, data: BaseModel | dict | list) -> tuple[Path, Path]:
    """`<stem>.md` and `<stem>.json` in `directory`; returns both paths."""
    return write_text(directory / f"{stem}.md", markdown), write_json(directory / f"{stem}.json", data)


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table; cell text is escaped so pipes and newlines in values cannot break it."""

    def cell(v: Any) -> str:
        s = "" if v is None else str(v)
        return s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _default(o: Any) -> Any:
    if isinstance(o, BaseModel):
        return o.model_dump(mode="json")
    if isinstance(o, datetime):
        return o.isoformat()
    if isinstance(o, Path):
        return str(o)
    return str(o)
