"""One frozen Settings object, read once at each entry point and passed down.

Every setting has an environment variable: prefix ``VIGIL_``, nested groups joined by ``__``
(``VIGIL_KAFKA__BOOTSTRAP_SERVERS``, ``VIGIL_REDIS__URL``). Secrets are ``SecretStr`` and never
printed. README.md lists every setting with its default; ``tests/unit/test_config.py`` holds the
README and this file in agreement.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.events import CHANNELS
from online_models.settings import ModelSettings

_FROZEN = ConfigDict(frozen=True, extra="forbid")
# Shipped rule files and action catalog live in the packages, wherever they are installed.
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


class TopicNames(BaseModel):
    """Kafka topic names, before the optional prefix is applied."""

    model_config = _FROZEN

    transactions: str = "events.transactions"
    app: str = "events.app"
    outcomes: str = "events.outcomes"
    profile: str = "events.profile"
    alerts: str = "alerts"
    actions: str = "actions"
    decisions: str = "decisions"
    dlq: str = "events.dlq"


class KafkaSettings(BaseModel):
    model_config = _FROZEN

    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    consumer_group: str = "vigil-worker"
    topics: TopicNames = TopicNames()
    # Largest record the worker produces (a DLQ record carries the original bytes, base64).
    max_request_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)

    def topic(self, name: str) -> str:
        """The full name of a topic by its role (``transactions``, ``alerts``, ...)."""
        return self.topic_prefix + str(getattr(self.topics, name))

    @property
    def input_topics(self) -> tuple[str, ...]:
        return tuple(self.topic(n) for n in ("transactions", "app", "outcomes", "profile"))

    @property
    def output_topics(self) -> tuple[str, ...]:
        return tuple(self.topic(n) for n in ("alerts", "actions", "decisions", "dlq"))


class RedisSettings(BaseModel):
    model_config = _FROZEN

    url: str = "redis://127.0.0.1:6379/0"
    password: SecretStr | None = None
    key_prefix: str = "vigil"


class WorkerSettings(BaseModel):
    model_config = _FROZEN

    batch_max: int = Field(default=200, ge=1)
    batch_within_seconds: float = Field(default=0.001, gt=0)
    max_event_bytes: int = Field(default=64 * 1024, ge=256)
    # An event stamped further ahead of the wall clock than this is refused (dead-lettered).
    max_future_seconds: float = Field(default=24 * 3600, ge=0)
    # Event-time horizon within which a redelivered event_id is recognised and changes nothing.
    dedup_horizon_seconds: int = Field(default=48 * 3600, ge=3600)
    # How long (wall clock) the result of an event's first application is kept, so a batch
    # retried after a crash is decided again exactly the same.
    redelivery_result_seconds: int = Field(default=600, ge=0)
    # Events older than the customer's latest event by more than this update no window.
    allowed_lateness_seconds: int = Field(default=3600, ge=0)
    # Idle customers' state expires after this long (wall clock, refreshed on every event).
    state_ttl_seconds: int = Field(default=120 * 24 * 3600, ge=3600)
    retry_backoff_max_seconds: float = Field(default=5.0, gt=0)
    # Prometheus /metrics of the worker; port 0 turns it off (e.g. several workers on one host).
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9108, ge=0, le=65535)
    # How often a worker looks for changed rule files (seconds).
    rules_reload_seconds: float = Field(default=2.0, gt=0)


class PolicySettings(BaseModel):
    """The contact policy (who may be contacted, how often, when) and the lead funnel.

    Validated at load: an unknown time zone, channel or tier, or a malformed cap is refused with a
    message naming it. ``actions.policy.compile_policy`` turns this into the checks; docs/actions.md
    explains each setting.
    """

    model_config = _FROZEN

    default_timezone: str = "Asia/Shanghai"
    quiet_hours_start: int = Field(default=21, ge=0, le=23)
    quiet_hours_end: int = Field(default=8, ge=0, le=23)
    # The channels quiet hours apply to (calls and SMS: a push or an e-mail waits in the app/inbox).
    quiet_hours_channels: tuple[str, ...] = ("sms", "robot_call", "rm_call")
    max_contacts_7d: int = Field(default=3, ge=0)
    # At most this many contacts in any rolling 24 hours, all channels together.
    max_contacts_24h: int = Field(default=1, ge=0)
    # The cap of a channel without an entry in ``channel_caps``.
    max_per_channel_7d: int = Field(default=2, ge=0)
    # Per-channel caps over rolling event-time windows: "<max>/<window>", window like 7d or 12h.
    channel_caps: dict[str, str] = {
        "sms": "2/7d",
        "robot_call": "1/14d",
        "rm_call": "1/14d",
        "rm_handoff": "1/30d",
    }
    complaint_suppression_days: int = Field(default=30, ge=0)
    # Contacts the whole bank may make per channel per day (its day in ``default_timezone``).
    daily_capacity: dict[str, int] = {"rm_call": 500, "rm_handoff": 100}
    # The lead funnel: lead score >= high -> offline RM (tiers below only), >= mid -> remote RM.
    lead_high_threshold: float = Field(default=0.75, ge=0, le=1)
    lead_mid_threshold: float = Field(default=0.5, ge=0, le=1)
    lead_score_models: tuple[str, ...] = ("churn_risk",)
    offline_rm_tiers: tuple[Literal["long_tail", "basic", "affluent"], ...] = ("affluent",)

    @field_validator("default_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @field_validator("quiet_hours_channels")
    @classmethod
    def _known_channels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cls._check_channels(value)
        return value

    @field_validator("channel_caps")
    @classmethod
    def _caps(cls, value: dict[str, str]) -> dict[str, str]:
        cls._check_channels(value)
        for channel, cap in value.items():
            if not cls._CAP.match(cap):
                raise ValueError(
                    f"cap {cap!r} of channel {channel!r} is not like '2/7d' (max/window)"
                )
        return value

    @field_validator("daily_capacity")
    @classmethod
    def _capacity(cls, value: dict[str, int]) -> dict[str, int]:
        cls._check_channels(value)
        negative = sorted(c for c, n in value.items() if n < 0)
        if negative:
            raise ValueError(f"daily capacity of {negative} is negative")
        return value

    @model_validator(mode="after")
    def _thresholds(self) -> PolicySettings:
        if self.lead_mid_threshold > self.lead_high_threshold:
            raise ValueError("lead_mid_threshold is above lead_high_threshold")
        return self

    _CAP: ClassVar[re.Pattern[str]] = re.compile(r"^\s*\d+\s*/\s*\d+\s*[smhd]\s*$")

    @staticmethod
    def _check_channels(channels: Iterable[str]) -> None:
        unknown = sorted(set(channels) - set(CHANNELS))
        if unknown:
            raise ValueError(f"unknown channel(s) {unknown}; known: {list(CHANNELS)}")


class ApiSettings(BaseModel):
    model_config = _FROZEN

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # "name:scope1+scope2:sha256-hex-of-key" entries, comma separated. Keys are stored hashed.
    api_keys: SecretStr = SecretStr("")


class ServiceSettings(BaseModel):
    """Where `vigil services` keeps the local Kafka and Redis it starts."""

    model_config = _FROZEN

    run_dir: Path = Path(".run")
    cache_dir: Path = Path(".cache")
    kafka_heap: str = "768m"
    start_timeout_seconds: float = Field(default=90.0, gt=0)


class Settings(BaseSettings):
    """Everything configurable about Vigil. Frozen: read once, pass down."""

    model_config = SettingsConfigDict(
        env_prefix="VIGIL_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    worker: WorkerSettings = WorkerSettings()
    policy: PolicySettings = PolicySettings()
    api: ApiSettings = ApiSettings()
    models: ModelSettings = ModelSettings()
    services: ServiceSettings = ServiceSettings()
    rules_dir: Path = _PACKAGE_ROOT / "rules" / "default"
    actions_catalog: Path = _PACKAGE_ROOT / "actions" / "catalog.yaml"
    model_seed: int = 7
    log_level: str = "INFO"


def load_settings() -> Settings:
    """Read the environment once; called only by entry points."""
    return Settings()
