"""Command-line entry point.

Each command lives in its own module under :mod:`tickstream.commands` and exposes
``register(app: typer.Typer) -> None``. Modules are discovered at start-up, so a new command is one
new file, and commands import their heavy dependencies lazily inside the command function.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

from tickstream import __version__, commands
from tickstream.logs import LogFormat, setup_logging

app = typer.Typer(
    name="tickstream",
    help="Market data for Indian markets: broker feeds -> ticks -> candles -> bus, store, API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING or ERROR."),
    log_format: LogFormat = typer.Option(LogFormat.TEXT, "--log-format", help="text or json."),
) -> None:
    """Set up logging once for every command."""
    setup_logging(log_level, log_format)


@app.command()
def version() -> None:
    """Print the tickstream version."""
    typer.echo(__version__)


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is None:
            raise RuntimeError(f"command module {module.__name__} has no register(app)")
        register(app)


_register_commands()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
