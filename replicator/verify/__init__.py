"""`replicator verify`: is the replica still a faithful copy, and was the master only ever read?

    from replicator.verify import run_verify, VerifyReport
    report: VerifyReport = run_verify(config, deep=True)
    report.ok, [(c.name, c.status, c.table, c.evidence) for c in report.checks]
"""

from .model import CHECKS, Check, VerifyReport
from .render import render_markdown, render_terminal
from .runner import DEFAULT_SNAPSHOT, run_verify

__all__ = ["CHECKS", "Check", "DEFAULT_SNAPSHOT", "VerifyReport", "render_markdown", "render_terminal", "run_verify"]
