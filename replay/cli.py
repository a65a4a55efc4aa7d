"""``vigil replay``: the production pipeline over history, with a report.

The lead mounts ``replay_command`` on the main Typer app; ``python -m replay.cli`` runs it alone.
Every check that can fail (inputs, options, settings, rules, catalog, the Kafka range) runs
before the first event is decided; a failure prints ``error: ...`` and exits with status 2.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.config import Settings
from engine.errors import ConfigError
from replay.progress import Progress
from replay.runner import (
    DEFAULT_BATCH,
    ReplayOptions,
    VariantRun,
    challenger_variant,
    champion_variant,
    remove_spool,
    run_replay,
    spool_directory,
)
from replay.sources import (
    Source,
    SourceError,
    TopicRange,
    fetch_topic_range,
    open_file_source,
    parse_instant,
)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def replay_command(
    report: Annotated[
        Path,
        typer.Option(
            "--report",
            help="Directory for report.json, report.html and decisions.jsonl (required).",
            show_default=False,
        ),
    ],
    inputs: Annotated[
        list[Path] | None,
        typer.Argument(
            help="JSONL or CSV files of events (plain or .gz); several are merged by event time.",
            show_default=False,
        ),
    ] = None,
    topic: Annotated[
        str | None,
        typer.Option(help="Replay a Kafka topic (name or role, e.g. transactions) instead."),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="With --topic: first Kafka timestamp, ISO 8601 with offset.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="With --topic: end (excluded), ISO 8601 with offset.")
    ] = None,
    rules: Annotated[
        Path | None, typer.Option(help="Rule folder (default: the configured rules_dir).")
    ] = None,
    catalog: Annotated[
        Path | None, typer.Option(help="Action catalog file (default: the configured one).")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="YAML/JSON file of Settings overrides, e.g. {policy: {...}}."),
    ] = None,
    compare: Annotated[
        Path | None,
        typer.Option(
            help="Replay a challenger too: a YAML file with name, rules, catalog, settings."
        ),
    ] = None,
    horizon_days: Annotated[
        float, typer.Option(min=0.001, help="Days within which an outcome makes an alert true.")
    ] = 30.0,
    batch_size: Annotated[
        int, typer.Option(min=1, max=100_000, help="Records per pipeline batch.")
    ] = DEFAULT_BATCH,
    learn: Annotated[
        bool,
        typer.Option(
            "--learn/--no-learn",
            help="Models learn from the replayed outcomes, as the live learner does.",
        ),
    ] = True,
    publish_minutes: Annotated[
        float,
        typer.Option(
            min=1, help="With --learn: install the learned models every N minutes of event time."
        ),
    ] = 60.0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Replay history through the live decision pipeline and write a backtest report."""
    files = list(inputs or [])
    if files and topic:
        raise _fail("give input files or --topic, not both")
    if not files and not topic:
        raise _fail("nothing to replay: give input files, or --topic with --since and --until")
    if topic and (since is None or until is None):
        raise _fail("--topic needs --since and --until")
    if not topic and (since is not None or until is not None):
        raise _fail("--since and --until go with --topic")
    if report.exists() and not report.is_dir():
        raise _fail(f"--report {report}: exists and is not a directory")

    try:
        base = Settings()
    except Exception as exc:  # pydantic names the variable and the problem
        raise _fail(f"invalid settings: {exc}") from None

    sources: list[Source] = []
    topic_range: TopicRange | None = None
    try:
        for path in files:
            sources.append(open_file_source(path))
        if topic is not None and since is not None and until is not None:
            start, end = parse_instant(since, "--since"), parse_instant(until, "--until")
            if end <= start:
                raise SourceError("--until must be after --since")
            name = topic if not hasattr(base.kafka.topics, topic) else base.kafka.topic(topic)
            topic_range = TopicRange(
                name, int(start.timestamp() * 1000), int(end.timestamp() * 1000)
            )
        champion = champion_variant(base, config=config, rules=rules, catalog=catalog)
        variants = [champion]
        if compare is not None:
            variants.append(challenger_variant(champion, compare))
        runs = [
            VariantRun(
                v,
                line_numbers=topic_range is None,
                learn=learn,
                publish_every=publish_minutes * 60.0,
            )
            for v in variants
        ]
    except (SourceError, ConfigError) as exc:
        raise _fail(str(exc)) from None

    inputs_info: list[dict[str, Any]] = [
        {"source": s.name, "kind": "file", "format": getattr(s, "format", None)} for s in sources
    ]
    spool: Path | None = None
    try:
        if topic_range is not None:
            spool = spool_directory(report)
            fetch_note = None if quiet else Progress(0, label=f"fetching {topic_range.topic}")
            fetched = [0]

            def on_fetch(n: int) -> None:
                fetched[0] = n
                if fetch_note is not None:
                    fetch_note.update(n, 0)

            try:
                sources = list(
                    asyncio.run(
                        fetch_topic_range(
                            champion.settings.kafka.bootstrap_servers,
                            topic_range,
                            spool,
                            on_progress=on_fetch,
                        )
                    )
                )
            except SourceError as exc:
                raise _fail(str(exc)) from None
            inputs_info = [
                {
                    "source": s.name,
                    "kind": "kafka",
                    "partition": getattr(s, "partition", None),
                    "since": since,
                    "until": until,
                }
                for s in sources
            ]
            if fetch_note is not None:
                fetch_note.finish(fetched[0])
            if not any(s.size() for s in sources):
                typer.echo(
                    f"note: {topic_range.topic} holds no record between {since} and {until}",
                    err=True,
                )
        progress = None if quiet else Progress(sum(s.size() for s in sources))
        options = ReplayOptions(report, horizon_days=horizon_days, batch_size=batch_size)
        doc = asyncio.run(run_replay(sources, runs, options, inputs=inputs_info, progress=progress))
    finally:
        if spool is not None:
            remove_spool(spool)
    _summary(doc, report)


def _summary(doc: dict[str, Any], report: Path) -> None:
    invalid = doc["invalid"]["total"]
    line = (
        f"replayed {doc['events']:,} events ({invalid:,} invalid) in {doc['wall_seconds']:.1f}s, "
        f"{doc['throughput_eps'] or 0:,.0f} events/s: {doc['alerts']['total']:,} alerts, "
        f"{doc['actions']['total']:,} actions"
    )
    typer.echo(line, err=True)
    comparison = doc.get("comparison")
    if comparison:
        typer.echo(
            f"challenger {doc['challenger']['variant']}: {doc['challenger']['alerts']['total']:,}"
            f" alerts; only champion {comparison['alerts_only_champion']['total']:,}, only "
            f"challenger {comparison['alerts_only_challenger']['total']:,}",
            err=True,
        )
    typer.echo(f"report: {report / 'report.html'}", err=True)


def main() -> None:  # pragma: no cover - `python -m replay.cli`
    typer.run(replay_command)


if __name__ == "__main__":  # pragma: no cover
    main()
