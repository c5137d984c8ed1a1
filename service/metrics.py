"""Prometheus collectors, one registry per app so that several apps (tests) never collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Latency buckets from 1 ms to 60 s: model calls on a CPU span that whole range.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "kexue_requests",
            "HTTP requests by route, model and status code",
            ["route", "model", "status"],
            registry=r,
        )
        self.request_latency = Histogram(
            "kexue_request_latency_seconds",
            "Time from request arrival to response, by route and model",
            ["route", "model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "kexue_queue_depth", "Inputs waiting in the model's queue", ["model"], registry=r
        )
        self.batch_size = Histogram(
            "kexue_batch_size",
            "Inputs per model call",
            ["model"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.queue_time = Histogram(
            "kexue_queue_time_seconds",
            "Time an input waited in the queue before its batch ran",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.compute_time = Histogram(
            "kexue_compute_time_seconds",
            "Time of one model call (a whole batch)",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rejected = Counter(
            "kexue_rejected",
            "Inputs refused or dropped before compute, by reason",
            ["model", "reason"],
            registry=r,
        )
        self.generated_tokens = Counter(
            "kexue_generated_tokens", "Tokens written by generation models", ["model"], registry=r
        )
        self.active_rows = Gauge(
            "kexue_generation_active_rows",
            "Samples being decoded together (continuous batching)",
            ["model"],
            registry=r,
        )
        self.time_to_first_token = Histogram(
            "kexue_time_to_first_token_seconds",
            "Time from a generation request's arrival to its first token",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.connections_dropped = Counter(
            "kexue_connections_dropped",
            "Connections the server closed or reset at its edge, by the limit that did it "
            "(service/http_protocol.py: requests the app never saw, clients that read nothing)",
            ["reason"],
            registry=r,
        )
        self.model_versions = Gauge(
            "kexue_model_version_state",
            "1 for the state each model version is in",
            ["model", "version", "state"],
            registry=r,
        )
