"""The `forgeproof` command line."""

from __future__ import annotations

import typer

from ml.cli import app as ml_app

app = typer.Typer(no_args_is_help=True, help="forgeproof: signed ML and supply-chain records.")
app.add_typer(ml_app, name="ml")


def main() -> None:
    app()
