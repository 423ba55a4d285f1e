"""One frozen Settings object: the only reader of settings files and ``ATTRIBUTION_*`` variables.

Precedence, highest first: explicit overrides (CLI flags) > ``ATTRIBUTION_*`` environment
variables > ``attribution.toml`` in the working directory > ``[tool.attribution]`` in the
working directory's ``pyproject.toml`` > defaults below.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

DEFAULT_MARKETPLACE_CURRENCIES: dict[str, str] = {
    "US": "USD",
    "UK": "GBP",
    "IN": "INR",
    "FR": "EUR",
    "DE": "EUR",
    "IT": "EUR",
    "ES": "EUR",
    "CA": "CAD",
}

CHANNELS: tuple[str, ...] = ("app", "web", "voice")

# Deepest first: the order used to name a session's touch type.
EVENT_TYPES: tuple[str, ...] = (
    "help_me_decide",
    "comparison",
    "product_question",
    "product_click",
    "review_summary",
    "query",
)

# The rule-based attribution models: one credit column each in fct_attribution.
RULE_MODELS: tuple[str, ...] = (
    "first_touch",
    "last_touch",
    "linear",
    "time_decay",
    "position_based",
)

ORDER_STATUSES: tuple[str, ...] = ("placed", "cancelled", "returned")

# Settings that do not change any table (left out of Settings.settings_hash).
OPERATIONAL_SETTINGS: frozenset[str] = frozenset(
    {
        "landing_dir",
        "warehouse_path",
        "report_dir",
        "data_docs_dir",
        "privacy_min_users",
        "report_png",
        "duckdb_memory_limit",
        "duckdb_threads",
        "run_lock_wait_seconds",
        "schedule_cron",
        "schedule_timezone",
    }
)
ARMS: tuple[str, ...] = ("treatment", "holdout")

# The pseudonymisation key: from the environment only (never a settings field, file or flag).
USER_ID_KEY_ENV = "ATTRIBUTION_USER_ID_KEY"
USER_ID_KEY_MIN_LENGTH = 16


class _TomlSource(PydanticBaseSettingsSource):
    """Settings from ``attribution.toml`` (whole file) or ``[tool.attribution]`` in pyproject."""

    def __init__(self, settings_cls: type[BaseSettings], directory: Path | None = None) -> None:
        super().__init__(settings_cls)
        self._values = _read_toml_settings(directory or Path.cwd())

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


def _read_toml_settings(directory: Path) -> dict[str, Any]:
    """Return the settings table found in ``directory`` (attribution.toml wins over pyproject)."""
    own = directory / "attribution.toml"
    if own.is_file():
        with own.open("rb") as fh:
            data = tomllib.load(fh)
        return _without_secrets(dict(data.get("attribution", data)), own)
    pyproject = directory / "pyproject.toml"
    if pyproject.is_file():
        with pyproject.open("rb") as fh:
            data = tomllib.load(fh)
        return _without_secrets(dict(data.get("tool", {}).get("attribution", {})), pyproject)
    return {}


def _without_secrets(values: dict[str, Any], path: Path) -> dict[str, Any]:
    """Refuse a pseudonymisation key written in a settings file, without echoing it."""
    if any(str(name).lower() == "user_id_key" for name in values):
        raise ValueError(
            f"{path}: the pseudonymisation key must not be written in a file; set the "
            f"environment variable {USER_ID_KEY_ENV} instead"
        )
    return values


class Settings(BaseSettings):
    """Every knob of the product, validated and frozen."""

    model_config = SettingsConfigDict(
        env_prefix="ATTRIBUTION_",
        frozen=True,
        extra="forbid",
    )

    windows_days: Annotated[tuple[int, ...], NoDecode] = Field(
        default=(1, 7, 14, 30), description="Attribution and conversion windows, whole days."
    )
    half_life_days: float = Field(default=7.0, gt=0, description="Time-decay half-life in days.")
    session_timeout_minutes: int = Field(
        default=30, gt=0, description="Inactivity gap that ends an assistant session."
    )
    marketplaces: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_MARKETPLACE_CURRENCIES),
        description="Marketplace code -> local currency (ISO 4217).",
    )
    reporting_currency: str = Field(default="USD", description="Currency of every *_usd column.")
    landing_dir: Path = Field(default=Path("landing"), description="Landing folder to ingest.")
    warehouse_path: Path = Field(
        default=Path("warehouse.duckdb"), description="DuckDB warehouse file."
    )
    report_dir: Path = Field(default=Path("report"), description="Where reports are written.")
    future_tolerance_days: int = Field(
        default=1, ge=0, description="How far past the run time a timestamp may lie."
    )
    expectations_max_rows: int = Field(
        default=1_000_000,
        gt=0,
        description="Great Expectations validates at most this many rows per batch "
        "(a deterministic sample beyond it); per-row contract rules always check every row.",
    )
    data_driven_touch_column: str = Field(
        default="touch_type",
        pattern="^(touch_type|channel|model_version)$",
        description="What a touch is in the data-driven model: touch_type, channel or "
        "model_version.",
    )
    data_driven_order: int = Field(
        default=1, ge=1, le=3, description="Order of the Markov chain of the data-driven model."
    )
    data_docs_dir: Path | None = Field(
        default=None,
        description="Where Great Expectations writes Data Docs (default: beside the warehouse).",
    )
    privacy_min_users: int = Field(
        default=50,
        ge=1,
        description="Privacy floor: no exported or displayed row describes fewer than this many "
        "distinct users; smaller cells are suppressed (and counted).",
    )
    report_png: str = Field(
        default="auto",
        pattern="^(auto|always|never)$",
        description="PNG images of the report's charts (kaleido + a Chromium): auto = when a "
        "Chromium is installed, always = fail without one, never.",
    )
    duckdb_memory_limit: str | None = Field(
        default=None,
        pattern=r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$",
        description="DuckDB memory_limit of pipeline runs (e.g. '4GB'); beyond it DuckDB spills "
        "to a temporary folder beside the warehouse. Default: DuckDB's (80% of RAM).",
    )
    duckdb_threads: int | None = Field(
        default=None, ge=1, description="DuckDB threads of pipeline runs. Default: every core."
    )
    run_lock_wait_seconds: float = Field(
        default=0,
        ge=0,
        description="How long a run waits for another run on the same warehouse to finish "
        "before it stops with exit code 75 (0: stop at once).",
    )
    schedule_cron: str = Field(
        default="0 2 * * *",
        description="Cron expression of the nightly run served by `attribution serve`.",
    )
    schedule_timezone: str = Field(
        default="UTC",
        description="IANA time zone of schedule_cron and of 'yesterday' in `--date yesterday`.",
    )
    pseudonymise_user_ids: bool = Field(
        default=False,
        description="Replace every user_id at ingest by a keyed hash (HMAC-SHA256, 32 hex "
        f"digits); the key is read from the environment variable {USER_ID_KEY_ENV} only.",
    )

    @field_validator("windows_days", mode="before")
    @classmethod
    def _parse_windows(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().startswith("["):
            value = json.loads(value)
        elif isinstance(value, str):
            value = [int(part) for part in value.replace(" ", "").split(",") if part]
        return value

    @field_validator("windows_days")
    @classmethod
    def _check_windows(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("at least one window is needed")
        if any(day < 1 for day in value):
            raise ValueError("windows are whole days >= 1")
        return tuple(sorted(set(value)))

    @field_validator("marketplaces")
    @classmethod
    def _check_marketplaces(cls, value: dict[str, str]) -> dict[str, str]:
        for code, currency in value.items():
            if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
                raise ValueError(f"marketplace {code}: {currency!r} is not an ISO 4217 code")
        return value

    @field_validator("schedule_timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"{value!r} is not an IANA time zone (e.g. UTC, Europe/Berlin)"
            ) from exc
        return value

    @model_validator(mode="after")
    def _check_reporting_currency(self) -> Settings:
        if self.reporting_currency != "USD":
            raise ValueError(
                "reporting_currency: only USD is supported (fx_rates carry rate_to_usd)"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))

    @property
    def max_window_days(self) -> int:
        return max(self.windows_days)

    @property
    def kpi_window_days(self) -> int:
        """Window of the headline attributed revenue: 7 days if configured, else the largest."""
        return 7 if 7 in self.windows_days else self.max_window_days

    @property
    def currencies(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.marketplaces.values())))

    def settings_hash(self) -> str:
        """Short SHA-256 of the settings that change the tables' numbers.

        Paths, the schedule, PNG images, DuckDB resource limits and the privacy floor (applied when rows are exported or
        displayed, never to the tables) are left out: changing them does not restate anything.
        """
        meaning = self.model_dump(mode="json", exclude=OPERATIONAL_SETTINGS)
        blob = json.dumps(meaning, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def user_id_key(settings: Settings) -> bytes | None:
    """Return the pseudonymisation key (from the environment) when ``pseudonymise_user_ids`` is
    on, else None; raise ``ValueError`` (never showing the key) if it is missing or too short."""
    if not settings.pseudonymise_user_ids:
        return None
    key = os.environ.get(USER_ID_KEY_ENV, "")
    if not key.strip():
        raise ValueError(
            f"pseudonymise_user_ids is on but the environment variable {USER_ID_KEY_ENV} is not "
            "set: export the secret key there (it is read from the environment only)"
        )
    if len(key) < USER_ID_KEY_MIN_LENGTH:
        raise ValueError(
            f"{USER_ID_KEY_ENV} is too short: use at least {USER_ID_KEY_MIN_LENGTH} characters "
            "of a random secret"
        )
    return key.encode("utf-8")


def load_settings(**overrides: Any) -> Settings:
    """Return the Settings for this process; ``None`` overrides are ignored (unset CLI flags)."""
    return Settings(**{key: value for key, value in overrides.items() if value is not None})
