"""Prometheus metrics of the API process. Names ``vigil_api_*``; latencies in seconds.

Route labels are route templates (``/customers/{customer_id}``), never raw paths, so a scan of
random URLs cannot grow the number of series.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from engine.metrics import LATENCY_BUCKETS

REQUESTS = Counter(
    "vigil_api_requests_total",
    "HTTP requests by route template, method and status",
    ["route", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "vigil_api_request_seconds",
    "Time to the response's first byte, by route template",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
STREAM_CLIENTS = Gauge(
    "vigil_api_stream_clients", "Alert stream clients connected, by transport", ["transport"]
)
STREAM_SENT = Counter(
    "vigil_api_stream_alerts_sent_total", "Alerts sent to stream clients", ["transport"]
)
STREAM_DROPPED = Counter(
    "vigil_api_stream_slow_clients_total",
    "Stream clients cut off because they did not read within the send timeout",
    ["transport"],
)
WEBHOOK_DELIVERIES = Counter(
    "vigil_api_webhook_deliveries_total",
    "Webhook delivery attempts by result (delivered, failed, dead_lettered)",
    ["result"],
)
WEBHOOK_SECONDS = Histogram(
    "vigil_api_webhook_delivery_seconds",
    "Duration of one webhook delivery attempt",
    buckets=LATENCY_BUCKETS,
)
ALERT_STREAM_LAG = Gauge(
    "vigil_api_alert_stream_lag_seconds",
    "Age of the newest alert when it reached the alert stream (now minus its decision time)",
)
CONSUMER_LAG = Gauge(
    "vigil_api_consumer_lag_messages",
    "Messages of a topic the API's consumer has not read yet",
    ["topic"],
)
INDEXED = Counter("vigil_api_indexed_total", "Messages read from a topic and indexed", ["topic"])
BAD_MESSAGES = Counter(
    "vigil_api_bad_messages_total", "Messages skipped because they could not be read", ["topic"]
)
