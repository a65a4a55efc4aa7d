"""`vigil`: the single entry point. Each command parses, dispatches and maps errors; the work is
done in the packages. Settings are read once here and passed down."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from engine.config import Settings, load_settings
from engine.errors import ConfigError

app = typer.Typer(
    name="vigil",
    help="Vigil: real-time customer-event decisioning for retail banks.",
    no_args_is_help=True,
    add_completion=False,
)


def _settings() -> Settings:
    try:
        return load_settings()
    except Exception as exc:  # pydantic's ValidationError names the variable and the problem
        typer.echo(f"error: invalid settings: {exc}", err=True)
        raise typer.Exit(2) from None


def _register_subcommands() -> None:
    from replay.cli import replay_command
    from rules.cli import rules_app
    from services.cli import services_app

    app.add_typer(services_app, name="services")
    app.add_typer(rules_app, name="rules")
    app.command(
        "replay", help="Replay history through the live pipeline and write a backtest report."
    )(replay_command)
    try:
        from simulator.cli import simulate_command
    except ImportError:  # pragma: no cover - the simulator ships with the package
        return
    app.command("simulate", help="Write a synthetic bank's event stream as JSONL.")(
        simulate_command
    )


@app.command()
def worker() -> None:
    """Run a Faust worker: consume the input topics, decide, emit alerts, actions, decisions."""
    from streams.worker import run_worker

    settings = _settings()
    sys.argv = [sys.argv[0], "worker"]  # Faust's worker reads argv; give it only its own verb
    try:
        run_worker(settings)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def publish(
    file: Annotated[Path, typer.Argument(help="JSONL file (plain or .gz), one event per line.")],
    rate: Annotated[
        float | None, typer.Option(help="Events per second (default: full speed).")
    ] = None,
    topic: Annotated[
        str | None, typer.Option(help="Send every line to this topic instead.")
    ] = None,
) -> None:
    """Send a file of events to the input topics, keyed by customer_id."""
    from streams.tools import publish as do_publish

    if not file.is_file():
        typer.echo(f"error: no such file: {file}", err=True)
        raise typer.Exit(2)
    if rate is not None and rate <= 0:
        typer.echo("error: --rate must be positive", err=True)
        raise typer.Exit(2)
    asyncio.run(do_publish(_settings(), file, rate, topic))


@app.command()
def tail(
    topic: Annotated[
        str, typer.Argument(help="Topic name or role: alerts, actions, decisions, dlq...")
    ],
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest message.")
    ] = False,
    max_messages: Annotated[
        int | None, typer.Option("--max", help="Stop after N messages.")
    ] = None,
    idle_timeout: Annotated[
        float | None, typer.Option("--idle-timeout", help="Stop after N idle seconds.")
    ] = None,
) -> None:
    """Print a topic's messages as JSON lines: the simplest subscriber."""
    from streams.tools import tail as do_tail

    asyncio.run(do_tail(_settings(), topic, from_beginning, max_messages, idle_timeout))


@app.command()
def customer(customer_id: str) -> None:
    """Print a customer's current features, profile, cooldowns and contacts (read-only)."""
    from engine.wiring import redis_store
    from features.state import state_as_dict

    async def read() -> None:
        store = redis_store(_settings())
        try:
            state = await store.read(customer_id)
        finally:
            await store.close()
        if state is None:
            typer.echo(f"error: unknown customer {customer_id!r}", err=True)
            raise typer.Exit(1)
        doc = state_as_dict(state)
        typer.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())

    asyncio.run(read())


@app.command()
def learner() -> None:
    """Run the learner: learn every model from decisions and late outcomes, publish snapshots."""
    from streams.learner import learner_command

    learner_command()


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Bind address (default from settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
) -> None:
    """Run the HTTP API: health, metrics, customers, decisions, alerts stream."""
    import uvicorn

    from api.main import create_app

    settings = _settings()
    uvicorn.run(
        create_app(settings),
        host=host or settings.api.host,
        port=port or settings.api.port,
        log_level=settings.log_level.lower(),
    )


@app.command()
def demo(
    stop: Annotated[bool, typer.Option("--stop", help="Stop the demo's worker and API.")] = False,
    customers: Annotated[int, typer.Option(min=1, max=100_000)] = 300,
    days: Annotated[int, typer.Option(min=1, max=365)] = 60,
    watch: Annotated[
        float, typer.Option(min=5, help="Seconds to print live alerts and actions.")
    ] = 45.0,
    rate: Annotated[float, typer.Option(min=1, help="Events per second to publish.")] = 1500.0,
) -> None:
    """Run a worker and the API, publish a simulated bank, print live alerts and actions."""
    from services import demo as demo_run

    settings = _settings()
    if stop:
        demo_run.stop(settings)
        return
    demo_run.run(settings, customers, days, watch, rate)


def main() -> None:
    _register_subcommands()
    app()


if __name__ == "__main__":
    main()
