"""Replay and backtest: the live DecisionPipeline over history (files or a Kafka topic range),
with the in-memory twins and an event-time clock, and a report measured against outcomes.

``replay.cli.replay_command`` is `vigil replay`; docs/replay.md explains it all.
"""
