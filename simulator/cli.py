"""``vigil simulate``: write a synthetic bank's event stream (and optionally its ground truth).

The lead registers ``simulate_command`` on the main Typer app; ``python -m simulator.cli`` runs it
alone.
"""

from __future__ import annotations

import time
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from simulator.bank import simulate, write_jsonl
from simulator.plan import CustomerPlan, plan_customers
from simulator.timeline import DEFAULT_START


def simulate_command(
    customers: Annotated[int, typer.Option(min=0, help="How many customers.")] = 1000,
    days: Annotated[int, typer.Option(min=0, help="How many days, from --start.")] = 60,
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 7,
    out: Annotated[
        Path, typer.Option(help="Events as JSON lines; gzipped if the name ends in .gz.")
    ] = Path("demo-data/events.jsonl.gz"),
    start: Annotated[
        str, typer.Option(help="First instant, ISO 8601 with a UTC offset.")
    ] = DEFAULT_START.isoformat(),
    truth: Annotated[
        Path | None,
        typer.Option(help="Also write every customer's plan (tier, fate, times) as JSON lines."),
    ] = None,
) -> None:
    """Simulate a bank's customers and write their events, sorted by time."""
    try:
        begin = datetime.fromisoformat(start)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 time: {start!r}", param_hint="--start") from None
    if begin.utcoffset() is None:
        raise typer.BadParameter(f"needs a UTC offset: {start!r}", param_hint="--start")
    clock = time.perf_counter()
    count = write_jsonl(simulate(customers, days, seed, begin), out)
    seconds = time.perf_counter() - clock
    typer.echo(
        f"wrote {count} events for {customers} customers over {days} days "
        f"to {out} in {seconds:.1f}s"
    )
    if truth is not None:
        plans = plan_customers(customers, days, seed, begin)
        write_jsonl((plan_record(p) for p in plans), truth)
        fates: dict[str, int] = {}
        for plan in plans:
            fates[plan.fate] = fates.get(plan.fate, 0) + 1
        summary = ", ".join(f"{k} {v}" for k, v in sorted(fates.items()))
        typer.echo(f"wrote the ground truth to {truth} ({summary})")


def plan_record(plan: CustomerPlan) -> dict[str, Any]:
    """A plan as JSON-ready data (times as ISO 8601 strings, absent times omitted)."""
    record: dict[str, Any] = {}
    for spec in fields(plan):
        value = getattr(plan, spec.name)
        if value is None:
            continue
        record[spec.name] = value.isoformat() if isinstance(value, datetime) else value
    record["fate"] = plan.fate
    return record


if __name__ == "__main__":
    typer.run(simulate_command)
