"""Imports each command module so that it registers itself on the `main` group."""

import importlib

for _name in ("init", "analyze", "migrate", "copy", "sync", "status", "verify", "demo"):
    try:
        importlib.import_module(f"{__package__}.{_name}")
    except ModuleNotFoundError as e:  # a command whose module is not written yet
        if e.name != f"{__package__}.{_name}":
            raise
