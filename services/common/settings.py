"""Settings from MLEB_* environment variables, with embedded defaults for a laptop."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

DEFAULT_PORTS = {"registry": 50051, "grader": 50052, "sandbox": 50053}


def _env(name: str, default: str = "") -> str:
    return os.environ.get(f"MLEB_{name}", default)


def _env_bool(name: str) -> bool:
    return _env(name).strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class TlsSettings:
    cert_file: Path
    key_file: Path
    # When set, the server requires client certificates signed by this CA.
    client_ca_file: Path | None = None


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    # "kid:secret" pairs, comma separated; the first one signs new tokens.
    auth_secret: str = ""
    auth_disabled: bool = False
    host: str = "127.0.0.1"
    registry_addr: str = f"127.0.0.1:{DEFAULT_PORTS['registry']}"
    grader_addr: str = f"127.0.0.1:{DEFAULT_PORTS['grader']}"
    sandbox_addr: str = f"127.0.0.1:{DEFAULT_PORTS['sandbox']}"
    # Token this service presents to the other services (service role).
    service_token: str = ""
    tls: TlsSettings | None = None
    # CA bundle a service uses to verify the other services' TLS certificates.
    client_tls_ca: Path | None = None
    # Prometheus endpoint port; 0 picks a free port, -1 disables it.
    metrics_port: int = -1
    log_level: str = "info"
    shutdown_grace_s: float = 10.0
    # Grader: submission size cap, parsed-answers cache and per-sandbox validation rate.
    max_submission_bytes: int = 2 * 1024**3
    answers_cache_bytes: int = 1024**3
    validate_rate_per_s: float = 1.0
    validate_burst: int = 10
    # Grader: a sandbox's validation upload may be this multiple of the competition's answers
    # size, never below the floor and never above the ceiling (docs/grader.md#limits).
    sandbox_upload_multiple: float = 8.0
    sandbox_upload_min_bytes: int = 4 * 1024**2
    sandbox_upload_max_bytes: int = 256 * 1024**2
    # Token revocation list: how long a server trusts its cached copy, and how stale it may
    # get while the registry is unreachable before lab and sandbox callers are refused.
    revocation_cache_s: float = 5.0
    revocation_max_stale_s: float = 30.0
    # Ed25519 keys that sign attestations and grading statements (services.common.signing);
    # None: one in-memory key per process, with a warning.
    signing_key_dir: Path | None = None

    @classmethod
    def from_env(cls) -> Settings:
        data_dir = Path(_env("DATA_DIR") or platformdirs.user_data_dir("mleb")).expanduser()
        tls = None
        if _env("TLS_CERT") and _env("TLS_KEY"):
            ca = _env("TLS_CLIENT_CA")
            tls = TlsSettings(
                Path(_env("TLS_CERT")), Path(_env("TLS_KEY")), Path(ca) if ca else None
            )
        return cls(
            data_dir=data_dir,
            database_url=_env("DATABASE_URL") or f"sqlite:///{data_dir / 'mleb.db'}",
            auth_secret=_env("AUTH_SECRET"),
            auth_disabled=_env_bool("AUTH_DISABLED"),
            host=_env("HOST", "127.0.0.1"),
            registry_addr=_env("REGISTRY_ADDR", f"127.0.0.1:{DEFAULT_PORTS['registry']}"),
            grader_addr=_env("GRADER_ADDR", f"127.0.0.1:{DEFAULT_PORTS['grader']}"),
            sandbox_addr=_env("SANDBOX_ADDR", f"127.0.0.1:{DEFAULT_PORTS['sandbox']}"),
            service_token=_env("SERVICE_TOKEN"),
            tls=tls,
            client_tls_ca=Path(_env("TLS_CA")) if _env("TLS_CA") else None,
            metrics_port=int(_env("METRICS_PORT", "-1")),
            log_level=_env("LOG_LEVEL", "info"),
            shutdown_grace_s=float(_env("SHUTDOWN_GRACE_S", "10")),
            max_submission_bytes=int(_env("MAX_SUBMISSION_BYTES", str(2 * 1024**3))),
            answers_cache_bytes=int(_env("ANSWERS_CACHE_BYTES", str(1024**3))),
            validate_rate_per_s=float(_env("VALIDATE_RATE_PER_S", "1")),
            validate_burst=int(_env("VALIDATE_BURST", "10")),
            sandbox_upload_multiple=float(_env("SANDBOX_UPLOAD_MULTIPLE", "8")),
            sandbox_upload_min_bytes=int(_env("SANDBOX_UPLOAD_MIN_BYTES", str(4 * 1024**2))),
            sandbox_upload_max_bytes=int(_env("SANDBOX_UPLOAD_MAX_BYTES", str(256 * 1024**2))),
            revocation_cache_s=float(_env("REVOCATION_CACHE_S", "5")),
            revocation_max_stale_s=float(_env("REVOCATION_MAX_STALE_S", "30")),
            signing_key_dir=Path(_env("SIGNING_KEY_DIR")) if _env("SIGNING_KEY_DIR") else None,
        )
