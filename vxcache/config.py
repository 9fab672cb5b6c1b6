"""
Settings: one validated, frozen object built from defaults, TOML, environment and options.

Precedence, lowest first: built-in defaults, the TOML file, ``VXCACHE_*``
environment variables, command-line options. ``config.example.toml`` documents
every key.

Example:
    >>> settings = load_settings(overrides={"node": {"url": "http://127.0.0.1:8700"}})
    >>> settings.node.url
    'http://127.0.0.1:8700'
"""

from __future__ import annotations

import difflib
import getpass
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import platformdirs
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from vxcache._units import parse_duration, parse_size
from vxcache.errors import ConfigError

logger = logging.getLogger(__name__)

APP_NAME = "vxcache"

Seconds = Annotated[float, BeforeValidator(parse_duration)]
Bytes = Annotated[int, BeforeValidator(parse_size)]


def _strip_text(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", strict=False)


class NodePaths(_Section):
    """Paths of the node's routes, relative to the node URL."""

    list: str = "/api/v3/sessions/list"
    show: str = "/api/v2/tenant/sessions/show"
    pull: str = "/api/v2/tenant/sessions/pull"
    apply: str = "/api/v2/tenant/sessions/apply"
    delete: str = "/api/v2/tenant/sessions/delete"

    @field_validator("*")
    @classmethod
    def _starts_with_slash(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("a path must start with '/'")
        return value


class NodeSettings(_Section):
    """How to reach and authenticate to the node."""

    url: str = "http://127.0.0.1:8700"
    # HTTP trims whitespace around a header value, so none can be part of a
    # token; a stray space or newline from a token file is dropped here.
    token: Annotated[SecretStr, BeforeValidator(_strip_text)] = SecretStr("")
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"
    connect_timeout: Seconds = 5.0
    read_timeout: Seconds = 30.0
    max_attempts: int = Field(default=4, ge=1, le=20)
    retry_max_wait: Seconds = 30.0
    max_pull_bytes: Bytes = 64 * 1024**2
    paths: NodePaths = NodePaths()

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises for a port out of range or not a number
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a valid URL: {exc}") from None
        if not parts.hostname:
            raise ValueError(f"{value!r} has no host name")
        return value.rstrip("/")


class CacheSettings(_Section):
    """Where the cache lives and what it keeps."""

    path: Path | None = None
    busy_timeout: Seconds = 5.0
    store_sensitive: bool = False

    @property
    def db_path(self) -> Path:
        """Return the SQLite file, defaulting to the platform's user data folder."""
        # Resolved, so a link to the cache shares its locks and its replica.
        if self.path is not None:
            return self.path.expanduser().resolve()
        return (Path(platformdirs.user_data_dir(APP_NAME)) / "cache.db").resolve()


class SyncSettings(_Section):
    """How and how often the mirror is refreshed."""

    interval: Seconds = 300.0
    jitter: Seconds = 15.0
    pull: bool = True
    pull_concurrency: int = Field(default=4, ge=1, le=64)
    lock_timeout: Seconds = 10.0
    recheck_per_sync: int = Field(default=50, ge=0)


class QuerySettings(_Section):
    """Limits on user SQL and where extra reports live."""

    time_limit: Annotated[float, BeforeValidator(parse_duration), Field(gt=0)] = 30.0
    row_cap: int = Field(default=10_000, ge=1)
    reports_dir: Path | None = None
    memory_limit: str = "2GB"


class WriteSettings(_Section):
    """Passing apply and delete through to the node."""

    actor: str = ""
    wait_timeout: Seconds = 600.0

    @property
    def actor_name(self) -> str:
        """Return the configured actor, or the operating-system user."""
        if self.actor:
            return self.actor
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return "unknown"


class ApiSettings(_Section):
    """The local HTTP API of ``vxcache serve``."""

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    token: SecretStr = SecretStr("")
    allow_writes: bool = True
    cors_origins: tuple[str, ...] = ()


class Settings(_Section):
    """Every setting vxcache reads, validated and frozen."""

    node: NodeSettings = NodeSettings()
    cache: CacheSettings = CacheSettings()
    sync: SyncSettings = SyncSettings()
    query: QuerySettings = QuerySettings()
    writes: WriteSettings = WriteSettings()
    api: ApiSettings = ApiSettings()
    offline: bool = False
    config_path: Path | None = None


_ENVIRONMENT = {
    "VXCACHE_NODE_URL": ("node", "url"),
    "VXCACHE_TOKEN": ("node", "token"),
    "VXCACHE_DB": ("cache", "path"),
}
_FILE_SECTIONS = ("node", "cache", "sync", "query", "writes", "api")


def default_config_path() -> Path:
    """Return where ``vxcache init`` writes, and where the config is looked for."""
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def starter_config(*, node_url: str | None = None, db_path: Path | None = None) -> str:
    """Return the documented example config, with the node URL and cache path filled in."""
    package = Path(__file__).resolve().parent
    for candidate in (
        package / "config.example.toml",
        package.parent / "config.example.toml",
    ):
        if candidate.is_file():
            text = candidate.read_text(encoding="utf-8")
            break
    else:
        raise ConfigError("config.example.toml is missing from this installation")
    if node_url:
        text = text.replace(
            'url = "http://127.0.0.1:8700"', f"url = {_toml_string(node_url)}", 1
        )
    if db_path:
        text = re.sub(
            r"^# path = .*$",
            f"path = {_toml_string(str(db_path))}",
            text,
            count=1,
            flags=re.MULTILINE,
        )
    return text


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def load_settings(
    config_path: Path | str | None = None,
    *,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    environ: Mapping[str, str] | None = None,
    offline: bool = False,
) -> Settings:
    """
    Build the settings from defaults, a TOML file, the environment and overrides.

    ``config_path`` None means ``VXCACHE_CONFIG`` or the default path, which may
    be absent; a path given explicitly must exist.

    Raises:
        ConfigError: the file cannot be read or parsed, or a value is invalid.
    """
    env = os.environ if environ is None else environ
    explicit = config_path or env.get("VXCACHE_CONFIG") or None
    path = Path(explicit).expanduser() if explicit else default_config_path()

    merged: dict[str, dict[str, Any]] = {section: {} for section in _FILE_SECTIONS}
    used_path: Path | None = None
    if path.is_file():
        _merge(merged, read_toml(path))
        used_path = path
    elif explicit:
        raise ConfigError(
            f"config file {path} does not exist; run `vxcache init` or fix --config"
        )

    # Where each value came from, so an error names the place to fix it.
    origins: dict[tuple[str, str], str] = {}
    for variable, (section, key) in _ENVIRONMENT.items():
        if env.get(variable):
            merged[section][key] = env[variable]
            origins[(section, key)] = variable
    for section, values in (overrides or {}).items():
        origins.update({(section, key): "a command-line option" for key in values})
    _merge(merged, overrides or {})

    try:
        return Settings(**merged, offline=offline, config_path=used_path)
    except ValidationError as exc:
        raise ConfigError(_describe_validation(exc, used_path, origins)) from None


def read_toml(path: Path) -> dict[str, Any]:
    """
    Parse a config file, warning about unknown keys.

    Raises:
        ConfigError: unreadable file or TOML syntax error, naming file, line and key.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_describe_toml_error(path, text, exc)) from None

    for section in _FILE_SECTIONS:
        if section in data and not isinstance(data[section], dict):
            # The value is not quoted: it may be a token put in the wrong place.
            raise ConfigError(
                f"config file {path}: '{section}' must be a table, written "
                f"[{section}] with its keys on the lines below, not a "
                f"{type(data[section]).__name__}"
            )
    _warn_unknown_keys(data, path)
    _warn_readable_secrets(data, path)
    return data


def _warn_readable_secrets(data: Mapping[str, Any], path: Path) -> None:
    holds_secret = any(
        isinstance(data.get(section), Mapping) and data[section].get("token")
        for section in ("node", "api")
    )
    if holds_secret and path.stat().st_mode & 0o077:
        logger.warning(
            "config file %s holds a token and others can read it; run `chmod 600 %s`",
            path,
            path,
        )


def _merge(target: dict[str, dict[str, Any]], source: Mapping[str, Any]) -> None:
    for section, values in source.items():
        if section in target and isinstance(values, Mapping):
            for key, value in values.items():
                if isinstance(value, Mapping) and isinstance(
                    target[section].get(key), dict
                ):
                    target[section][key] = {**target[section][key], **value}
                else:
                    target[section][key] = value
        elif section in target:
            target[section] = values  # a non-table section: pydantic reports its type


def _warn_unknown_keys(data: Mapping[str, Any], path: Path) -> None:
    _warn_unknown(data, Settings, prefix="", path=path)


def _warn_unknown(
    values: Mapping[str, Any], model: type[BaseModel], *, prefix: str, path: Path
) -> None:
    fields = model.model_fields
    for key, value in values.items():
        if key not in fields or key in ("offline", "config_path"):
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
            logger.warning(
                "unknown config key '%s%s' in %s is ignored%s", prefix, key, path, hint
            )
            continue
        annotation = fields[key].annotation
        if not isinstance(value, Mapping) or not isinstance(annotation, type):
            continue
        if issubclass(annotation, BaseModel):
            _warn_unknown(value, annotation, prefix=f"{prefix}{key}.", path=path)


def _describe_toml_error(path: Path, text: str, exc: tomllib.TOMLDecodeError) -> str:
    reason = re.sub(r"\s*\(at .*\)$", "", str(exc))
    line_number = getattr(exc, "lineno", None)
    if line_number is None:
        found = re.search(r"line (\d+)", str(exc))
        line_number = int(found[1]) if found else None
    if line_number is None:
        return f"{path}: invalid TOML: {reason}"
    lines = text.splitlines()
    line = lines[line_number - 1] if 0 < line_number <= len(lines) else ""
    key = line.split("=", 1)[0].strip() if "=" in line else ""
    where = f"line {line_number}" + (f", key '{key}'" if key else "")

    return f"{path} {where}: invalid TOML: {reason}"


def _describe_validation(
    exc: ValidationError, path: Path | None, origins: Mapping[tuple[str, str], str]
) -> str:
    problems = []
    for error in exc.errors():
        location = [str(part) for part in error["loc"]]
        origin = origins.get((location[0], location[1])) if len(location) > 1 else None
        source = origin or (str(path) if path else "the defaults")
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"'{'.'.join(location)}' (from {source}): {message}")
    noun = "value" if len(problems) == 1 else "values"

    return f"invalid config {noun}: " + "; ".join(problems)
