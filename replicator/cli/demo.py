"""`replicator demo`: the whole pipeline on two throwaway embedded servers."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import main


@main.command()
@click.option("--keep", is_flag=True,
              help="leave both servers running afterwards and print how to reach them.")
@click.option("--stop", is_flag=True,
              help="stop every demo server left running by --keep and remove its data, then exit.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("replicator-demo"),
              show_default=True, help="where the demo's reports/ and schemas/ are written.")
def demo(keep: bool, stop: bool, out_dir: Path) -> None:
    """Start two embedded PostgreSQL servers with the sample master and drifted replica, and run
    analyze → migrate → copy --all → verify --deep against them.

    Needs nothing installed: the servers come from the pgserver wheel. The demo never touches the
    servers in your configuration or environment. Exit code 0 when every step passed.
    """
    from .. import demo as demo_lib

    if stop:
        if keep:
            raise click.UsageError("--stop and --keep cannot be combined")
        demo_lib.stop_all()
        return
    code = demo_lib.run_demo(out_dir, keep=keep)
    if code:
        sys.exit(code)
