"""Prometheus metrics for commerce-core: the core's telemetry, HTTP requests, outbox
backlogs and database pools, summed over a server's worker processes."""

from commerce_core_prometheus.http import HttpMetrics, allowed_networks, metrics_endpoint
from commerce_core_prometheus.metrics import (
    CONTENT_TYPE_LATEST,
    Metrics,
    OutboxBacklog,
    PrometheusTelemetry,
)

__all__ = ["CONTENT_TYPE_LATEST", "HttpMetrics", "Metrics", "OutboxBacklog",
           "PrometheusTelemetry", "allowed_networks", "metrics_endpoint"]
