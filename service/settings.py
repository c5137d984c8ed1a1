"""Every knob of the service: one typed field each, read from the environment (and `.env`).

Each field's description is what the API reference (docs/api.md, "Settings that limit it") shows
next to its default; the README's settings table says the same in its own words, and .env.example
lists every field but MODEL_STORE. Change a default here, in the README and in .env.example
together.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# An origin as a browser's `Origin` header serialises it (lower case): scheme://host[:port].
ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://(\[[0-9a-f:.]+\]|[a-z0-9._~%!$&'()*+;=-]+)(:[0-9]{1,5})?")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    # The model store (TensorFlow Serving layout: <name>/<version>/saved_model.pb + manifest.json).
    model_store: Path = Field(Path("model_store"), description="Folder of models to serve.")
    poll_interval_s: float = Field(
        10.0,
        ge=0,
        description="How often the store is rescanned for new versions; 0 turns polling off.",
    )
    max_load_retries: int = Field(
        5,
        ge=0,
        description="How often a version that failed to load is tried again once its folder "
        "has changed (and stopped changing); 0: only an admin reload tries it again.",
    )
    load_retry_backoff_s: float = Field(
        10.0,
        ge=0,
        description="The least wait before the first such retry; each next one waits twice "
        "as long.",
    )
    store_read_timeout_s: float = Field(
        10.0,
        gt=0,
        description="How long a scan waits for one store read (a folder listing, a version's "
        "files and manifest) before it goes on without it; a read that hangs (a stuck network "
        "filesystem) is named in /readyz and not started again until it returns.",
    )
    ready_grace_s: float = Field(
        300.0,
        ge=0,
        description="How long a model with no loaded version keeps /readyz at 503 while a version "
        "of it is still to be tried (incomplete, settling, due for a retry); a model whose "
        "versions all failed, or past this, is named in /readyz but no longer holds it at 503.",
    )
    version_policy: str = Field(
        "latest",
        description="Which versions of each model are loaded at once (TensorFlow Serving's "
        "version policy): 'latest', the newest that loads; 'latest:N', the N newest that load; "
        "'all', every version in the store. A request without `version` goes to the newest "
        "loaded one; more versions loaded cost their memory each.",
    )
    warmup: bool = Field(
        True, description="Run every batch-size/length bucket once before a version is served."
    )

    # Batching (TEI/Triton style): a wider window fills batches better at the cost of latency.
    max_batch_size: int = Field(32, ge=1, le=4096, description="Most inputs in one model call.")
    max_batch_delay_ms: float = Field(
        5.0,
        ge=0,
        description="How long a batch waits for more inputs: while others are being tokenised, "
        "or under load after the model comes free; a lone request at low load never waits.",
    )
    max_batch_tokens: int = Field(
        16384, ge=1, description="Padded tokens per batch (rows x bucket length), bounds memory."
    )
    length_buckets: str = Field(
        "16,24,32,40,48,64,96,128,192,256,384,512",
        description="Sequence lengths inputs are padded to; each is warmed up at load.",
    )
    max_queue: int = Field(
        1024,
        ge=1,
        description="Inputs waiting per model; past it requests get 429 at once (413 for a "
        "request with more inputs than that on its own).",
    )
    request_timeout_s: float = Field(
        30.0, gt=0, description="Deadline from arrival; a request still queued past it gets 504."
    )
    drain_s: float = Field(
        3.0,
        ge=0,
        description="On SIGTERM, how long /readyz answers 503 while requests are still served, "
        "before the graceful shutdown (load balancers stop sending in that time).",
    )

    # The request head (request line and header fields), bounded before any of it reaches the
    # app: nginx's large_client_header_buffers (4 x 8k) and client_header_timeout (60s), and
    # Apache's LimitRequestFields (100).
    max_header_bytes: int = Field(
        32768,
        ge=1024,
        description="Largest request head (request line and header fields) in bytes; past it "
        "431, or the connection is closed while a head is still arriving.",
    )
    max_header_count: int = Field(100, ge=1, description="Most header fields in a request (431).")
    header_timeout_s: float = Field(
        60.0,
        gt=0,
        description="How long a connection may take to send a whole request head, from when it "
        "opens or its last response ended; then it is closed (408 if a head was under way).",
    )
    # uvicorn's timeout_keep_alive (5 s, Apache's KeepAliveTimeout too): a proxy or load balancer
    # that reuses connections must close them first (AWS ALB keeps them 60 s), or a request it
    # sends as the service closes the connection fails with a reset (a 502 to its caller).
    keep_alive_s: float = Field(
        5.0,
        gt=0,
        description="How long an idle connection is kept open after a response for the next "
        "request (at most HEADER_TIMEOUT_S); behind a proxy or load balancer that reuses "
        "connections, set it longer than the proxy's idle timeout.",
    )
    # nginx's client_body_timeout (60s): the time between two reads of a body, not for all of it.
    body_timeout_s: float = Field(
        60.0,
        gt=0,
        description="How long a request body may go without a byte arriving while it is read; "
        "then 408 and the connection is closed. A slow but steady upload is never cut.",
    )
    # nginx's send_timeout (60s): the time a response may wait on a client that takes none of it.
    send_timeout_s: float = Field(
        60.0,
        gt=0,
        description="How long writing a response may wait on a client that takes none of it "
        "(the socket's buffers full); then the connection is reset. A slow but steady reader is "
        "never cut.",
    )

    # Request limits: past these a request gets 413 (the schema's hard caps give 422).
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest request body in bytes.")
    max_inputs: int = Field(256, ge=1, description="Most inputs (texts, rows) in one request.")
    max_text_chars: int = Field(8192, ge=1, description="Most characters in one text.")
    max_new_tokens: int = Field(256, ge=1, description="Most tokens one generation may ask for.")
    max_num_samples: int = Field(
        16, ge=1, description="Most samples one generation request may ask for (num_samples)."
    )
    max_passages: int = Field(
        16,
        ge=1,
        description="Most passages one question may carry, and most windows its long passages "
        "are read as (413).",
    )
    max_sentences: int = Field(
        64,
        ge=1,
        description="Most rows one question is read as when read by sentence (a model whose "
        "decoding.read_by is 'sentence', or read_by 'sentence'): its passages' sentences, and "
        "the windows of a sentence longer than the model reads (413).",
    )
    max_beam_size: int = Field(8, ge=1, description="Most beams one QA request may ask for.")
    max_exact_logdet_dim: int = Field(
        64, ge=1, description="Largest input_dim logdet 'exact' is allowed for (400 past it)."
    )
    max_density_samples: int = Field(
        1024, ge=1, description="Most samples one density sampling request may ask for (413)."
    )

    admin_token: SecretStr | None = Field(
        None, description="Bearer token of the admin endpoints; unset turns them off."
    )
    # API keys (service/auth.py): with none configured every endpoint is open, as before.
    api_keys: SecretStr | None = Field(
        None,
        description="API keys, separated by commas: when set (or API_KEYS_FILE), every endpoint "
        "but /healthz, /readyz, /metrics (see METRICS_REQUIRE_KEY), /openapi.json and the pages "
        "(/docs, /redoc, /playground) wants `Authorization: Bearer <key>` (401 otherwise). "
        "ADMIN_TOKEN is taken as a key too.",
    )
    api_keys_file: Path | None = Field(
        None,
        description="A file of API keys, one a line ('#' starts a comment), read again when it "
        "changes (checked on each request): add a key, move the clients to it, remove the old "
        "one, with no restart. The keys of API_KEYS count as well.",
    )
    metrics_require_key: bool = Field(
        False,
        description="With API keys configured, /metrics wants a key too; by default it stays "
        "open, like /healthz, for a Prometheus scraper on the internal network.",
    )
    # CORS (text-embeddings-inference's --cors-allow-origin): off unless origins are named.
    cors_allow_origins: str | None = Field(
        None,
        description="Origins whose browser pages may call the API (CORS), separated by commas: "
        "'https://app.example.com' (scheme://host[:port], no path), or '*' for any. Their "
        "preflight (OPTIONS) is answered and every response, errors included, carries "
        "Access-Control-Allow-Origin; GET, HEAD, POST with Content-Type and Authorization. Unset: "
        "no CORS headers at all.",
    )
    default_embedding_model: str | None = Field(
        None, description="Model used by /v1/embeddings when a request names none."
    )
    default_qa_model: str | None = Field(
        None, description="Model used by /v1/qa when a request names none."
    )
    default_generation_model: str | None = Field(
        None, description="Model used by /v1/generate when a request names none."
    )
    default_density_model: str | None = Field(
        None, description="Model used by /v1/density/* when a request names none."
    )

    # Devices: TensorFlow places ops on a visible GPU by itself; these only restrict or tune that.
    device: str = Field(
        "auto", description="'auto' (GPU if visible, else CPU), 'cpu', or 'gpu:N' for one card."
    )
    mixed_precision: bool = Field(
        False, description="On GPUs, rewrite graphs to float16 where safe (auto mixed precision)."
    )
    host: str = Field(
        "0.0.0.0", description="Address `python -m service` listens on (0.0.0.0: every interface)."
    )
    port: int = Field(8000, ge=0, le=65535, description="Port `python -m service` listens on.")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info")
    access_log: bool = Field(
        False,
        description="Log a line per request (uvicorn's access log); /metrics counts every "
        "request by route, model and status either way. Off by default, as in TensorFlow "
        "Serving and Triton: at hundreds of requests a second the lines cost about 3% of the "
        "event loop and flood the log.",
    )

    @field_validator(
        "admin_token",
        "api_keys",
        "api_keys_file",
        "cors_allow_origins",
        "default_embedding_model",
        "default_qa_model",
        "default_generation_model",
        "default_density_model",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `ADMIN_TOKEN=` in an .env or compose file means "off", never "the empty token".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("length_buckets")
    @classmethod
    def _buckets_are_increasing_ints(cls, value: str) -> str:
        buckets = [int(part) for part in value.split(",") if part.strip()]
        if not buckets or any(b <= 0 for b in buckets) or buckets != sorted(set(buckets)):
            raise ValueError("LENGTH_BUCKETS must be increasing positive integers, e.g. '16,32,64'")
        return value

    @field_validator("cors_allow_origins")
    @classmethod
    def _origins_as_browsers_send_them(cls, value: str | None) -> str | None:
        if value is None:
            return None
        origins = [part.strip().lower() for part in value.split(",") if part.strip()]
        for origin in origins:
            if origin != "*" and not ORIGIN.fullmatch(origin):
                hint = " (no trailing slash)" if origin.endswith("/") else ""
                raise ValueError(
                    f"CORS_ALLOW_ORIGINS: {origin!r} is not an origin as a browser sends it: "
                    f"scheme://host[:port], no path{hint}, e.g. 'https://app.example.com', "
                    "or '*' for any"
                )
        return ",".join(origins) or None

    @property
    def cors_origins(self) -> tuple[str, ...]:
        """CORS_ALLOW_ORIGINS as a tuple (empty: CORS off)."""
        return tuple(self.cors_allow_origins.split(",")) if self.cors_allow_origins else ()

    @field_validator("version_policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        versions_to_load(value)  # raises ValueError with the reason
        return value.strip().lower()

    @property
    def versions_to_load(self) -> int | None:
        """How many versions of a model VERSION_POLICY loads at once (None: all of them)."""
        return versions_to_load(self.version_policy)

    @property
    def buckets(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.length_buckets.split(",") if part.strip())


def versions_to_load(policy: str) -> int | None:
    """VERSION_POLICY as a count: 'latest' 1, 'latest:N' N, 'all' None (every version);
    ValueError for anything else."""
    text = policy.strip().lower()
    if text == "all":
        return None
    if text == "latest":
        return 1
    kind, _, count = text.partition(":")
    if kind == "latest" and count.isascii() and count.isdigit() and int(count) >= 1:
        return int(count)
    raise ValueError(
        f"VERSION_POLICY must be 'latest', 'latest:N' (N a positive integer) or 'all', "
        f"not {policy!r}"
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
