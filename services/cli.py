"""`vigil services up | down | status`: the local Kafka and Redis for development and tests.

Mounted by the main CLI as ``vigil services``; also runnable alone as ``python -m services.cli``.
"""

from __future__ import annotations

import json

import typer

from engine.config import load_settings
from services import local

services_app = typer.Typer(
    help="Start, stop and inspect the local single-node Kafka (KRaft) and Redis.",
    no_args_is_help=True,
)


def _fail(error: local.ServiceError) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(code=1)


@services_app.command()
def up() -> None:
    """Start Kafka and Redis (unless they answer already), wait for them, create the topics."""
    try:
        report = local.up(load_settings(), echo=typer.echo)
    except local.ServiceError as error:
        raise _fail(error) from error
    typer.echo(json.dumps(report, indent=2))


@services_app.command()
def down() -> None:
    """Stop the Kafka and Redis that `up` started; data and logs stay in the run folder."""
    try:
        local.down(load_settings(), echo=typer.echo)
    except local.ServiceError as error:
        raise _fail(error) from error


@services_app.command()
def status() -> None:
    """Print each service's pid, running and answering as JSON; exit 1 unless all answer."""
    report = local.status(load_settings())
    typer.echo(json.dumps(report, indent=2))
    if not all(service["answering"] for service in report.values()):
        raise typer.Exit(code=1)


if __name__ == "__main__":
    services_app()
