"""`forgeproof ml ...`: train, evaluate and predict.

Heavy imports (torch) happen inside the commands so that the rest of the CLI starts fast.
"""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Train, evaluate and run the forgeproof models.")
