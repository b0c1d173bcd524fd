"""Node configuration: one TOML file, validated at load, with clear errors."""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from blindmatch.node.errors import BlindmatchError
from blindmatch.protocol.key_lifetime import LIFETIME_CAP
from blindmatch.protocol.roster import NODE_ID


class ConfigError(BlindmatchError, ValueError):
    code = "bad-config"


CONFIG_ENV = "BLINDMATCH_CONFIG"
CONFIG_FILE = "config.toml"


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """``--config``: how every node command names the node (its home's config.toml)."""
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"the node's {CONFIG_FILE}, or its home directory (default: ${CONFIG_ENV})",
    )


def config_path(args: argparse.Namespace) -> Path:
    """The config file named by ``--config`` or ``$BLINDMATCH_CONFIG`` (a home directory
    stands for its config.toml)."""
    given = getattr(args, "config", None) or os.environ.get(CONFIG_ENV) or None
    if given is None:
        raise ConfigError(
            f"which node? give --config HOME/{CONFIG_FILE} or set {CONFIG_ENV}"
            f" (HOME is the directory 'blindmatch init --home' created)"
        )
    path = Path(given).expanduser()
    return (path / CONFIG_FILE if path.is_dir() else path).resolve()


def load_from_args(args: argparse.Namespace) -> NodeConfig:
    return load(config_path(args))


DB_ENV = "BLINDMATCH_DB"


def add_database_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config`` (the node, as for every node command) or ``--db URL`` (a database alone)."""
    add_config_argument(parser)
    parser.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help=f"a database URL instead of a node's config (default: ${DB_ENV})",
    )


def database_url_from_args(args: argparse.Namespace) -> str:
    """The database of the node named by ``--config``/``$BLINDMATCH_CONFIG``, or ``--db`` /
    ``$BLINDMATCH_DB``; never a silent default (a bank in the wrong database is a bank no one
    matches against)."""
    if getattr(args, "db", None):
        return str(args.db)
    if getattr(args, "config", None) is None and os.environ.get(DB_ENV):
        return os.environ[DB_ENV]
    try:
        return load_from_args(args).database_url
    except ConfigError as exc:
        if "which node?" in str(exc):
            raise ConfigError(
                f"which node? give --config HOME/{CONFIG_FILE} (or set {CONFIG_ENV}), or --db URL"
            ) from None
        raise


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_tls_unless_loopback(url: str, what: str) -> None:
    """Plain HTTP is allowed only to loopback addresses (spec: HTTPS between nodes)."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and parts.hostname and is_loopback_host(parts.hostname):
        return
    raise ConfigError(f"{what}: {url} must use https (plain http only on loopback)")


@dataclass
class NodeConfig:
    node_id: str
    home: Path  # keys, default database and state live under here
    listen_host: str = "127.0.0.1"
    listen_port: int = 8700
    api_host: str = "127.0.0.1"
    api_port: int = 8710
    database: str = ""
    roster_path: Path | None = None
    governance_keys: list[bytes] = field(default_factory=list)
    governance_threshold: int = 1
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # CA bundle that peers' certificates are verified against (default: the system's CAs)
    tls_ca: Path | None = None
    roster_check_interval_s: float = 10.0  # how often the roster file is checked for a change
    # A hub's survivor page names the service and how to reach it (default: the node id).
    hub_name: str | None = None
    hub_contact: str | None = None
    privacy_url: str | None = None  # the hub's full privacy policy (https)
    sync_interval_s: float = 5.0
    match_workers: int = 4
    lsh_scheme: str = "pdq-lsh-1"
    dihedral_queries: bool = True
    # Also look up an upload's tile hashes (pdq-tiles-1), so derivatives of protected source
    # photos are found; costs about 5x the OPRF evaluations of a whole-picture query.
    derivative_search: bool = True
    release_bands: tuple[int, ...] = (8, 16, 31)
    # Per signal type, its adapter's own settings (a TOML table ``[signals.<type name>]``;
    # node/signals: each adapter says what it reads), e.g. turning on a type that derives
    # query hashes of its own from pictures.
    signal_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    policy_path: Path | None = None  # node/cases/policy.py; defaults never auto-act
    webhook_url: str | None = None  # the platform's endpoint for block/remove/restore/notify
    webhook_secret_path: Path | None = None  # HMAC key for webhook signatures
    source_path: Path | None = None
    # The VOPRF key's lifetime (spec 8.2): evaluations it may answer, and how long a retired
    # key keeps answering after the roster names its successor (queriers re-sync meanwhile).
    voprf_key_cap: int = LIFETIME_CAP
    key_overlap_s: int = 7 * 86_400
    # Batched, padded publication of the index (spec 8.7): additions wait and go out together
    # at most once per ``index_batch_s`` (0: every round, unprotected), each batch padded per
    # table with decoys to ``index_batch_padding`` entries (0: no decoys). ``blindmatch init``
    # writes 7 days and 163,840 (the 10-year bound of 8.7 against 100 colluding members at
    # platform volume); 0 here is for dev federations and tests, and a config file without the
    # settings (a node made before them) keeps publishing at once.
    index_batch_s: int = 0
    index_batch_padding: int = 0
    # Tiles (41 key prefixes per protected source, each padded apart: up to 41 x the padding
    # in decoys per table a batch) go out in batches of their own at most once per
    # ``index_tile_batch_s``; ``blindmatch init`` writes 90 days. Without batching it is 0;
    # a config file without the setting (a node made before it) gets 90 days when batching.
    index_tile_batch_s: int = 0

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite:///{self.home / 'node.db'}"

    def validate(self) -> None:
        if not NODE_ID.fullmatch(self.node_id):
            raise ConfigError(f"node_id: must match {NODE_ID.pattern}")
        for what, host, cert in (
            ("listen", self.listen_host, self.tls_cert),
            ("api_listen", self.api_host, self.tls_cert),
        ):
            if not is_loopback_host(host) and cert is None:
                raise ConfigError(
                    f"{what}: {host} is not a loopback address; configure tls_cert and tls_key"
                )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("tls_cert and tls_key go together")
        if not 1 <= self.governance_threshold <= max(1, len(self.governance_keys)):
            raise ConfigError("governance_threshold must be between 1 and the number of keys")
        if self.roster_path is not None and not self.governance_keys:
            raise ConfigError("a roster needs governance_keys to verify it against")
        if not 1 <= self.voprf_key_cap <= LIFETIME_CAP:
            raise ConfigError(f"voprf_key_cap must be between 1 and {LIFETIME_CAP} (spec 8.2)")
        if self.key_overlap_s < 0:
            raise ConfigError("key_overlap_days must not be negative")
        if not 0 <= self.index_batch_s <= MAX_BATCH_S:
            raise ConfigError("index_batch_days: a number of days in 0..90")
        if not 0 <= self.index_batch_padding <= MAX_BATCH_PADDING:
            raise ConfigError(f"index_batch_padding: an integer in 0..{MAX_BATCH_PADDING}")
        if self.index_batch_s == 0 and self.index_tile_batch_s != 0:
            raise ConfigError("index_tile_batch_days needs index_batch_days")
        if self.index_batch_s and not (
            self.index_batch_s <= self.index_tile_batch_s <= MAX_TILE_BATCH_S
        ):
            raise ConfigError(
                "index_tile_batch_days: a number of days from index_batch_days to 366"
            )
        if self.index_batch_padding and self.index_batch_s < 3600:
            # decoys are never taken back (8.6): padding every round would grow every replica
            # by the padding each few seconds
            raise ConfigError("index_batch_padding needs index_batch_days of at least 1/24")
        if list(self.release_bands) != sorted(set(self.release_bands)) or not self.release_bands:
            raise ConfigError("release_bands must be strictly increasing")
        if self.privacy_url is not None and not self.privacy_url.startswith("https://"):
            raise ConfigError("privacy_url: an https:// address")
        if self.release_bands[0] < 0 or self.release_bands[-1] > 256:
            raise ConfigError("release_bands are distances in 0..256")
        for what, seconds in (
            ("sync_interval_s", self.sync_interval_s),
            ("roster_check_interval_s", self.roster_check_interval_s),
        ):
            # NaN compares false with everything: a plain range check would let it through.
            if not math.isfinite(seconds) or not 0 < seconds <= 86400:
                raise ConfigError(f"{what}: a number of seconds in (0, 86400]")
        if not 1 <= self.match_workers <= 256:
            raise ConfigError("match_workers: an integer in 1..256")
        if self.webhook_url is not None:
            require_tls_unless_loopback(self.webhook_url, "webhook_url")
            if self.webhook_secret_path is None:
                raise ConfigError("webhook_url needs webhook_secret_file (webhooks are signed)")


MAX_BATCH_S = 90 * 86_400
MAX_TILE_BATCH_S = 366 * 86_400
DEFAULT_TILE_BATCH_S = 90 * 86_400
MAX_BATCH_PADDING = 1 << 20


def _batch_seconds(value: Any, what: str = "index_batch_days") -> int:
    days = float(value)
    if not math.isfinite(days):
        raise ValueError(f"{what}: a finite number of days")
    return round(days * 86_400)


def default_tile_batch_s(index_batch_s: int) -> int:
    """Tiles' interval when none is set: none without batching, else 90 days (8.7)."""
    return max(index_batch_s, DEFAULT_TILE_BATCH_S) if index_batch_s else 0


def _short_text(value: Any, what: str) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or len(value) > 200 or not value.isprintable():
        raise ConfigError(f"{what}: a line of text of at most 200 characters")
    return value


def _hostport(value: Any, what: str) -> tuple[str, int]:
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError(f"{what}: expected HOST:PORT")
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{what}: bad port")
    return host.strip("[]"), int(port)


def _signal_options(raw: Any, path: Path) -> dict[str, dict[str, Any]]:
    """``[signals.<type>]`` tables: each names a registered signal type and holds its adapter's
    settings (strings, numbers, booleans)."""
    from blindmatch.protocol import signal_types

    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: signals: a table of [signals.<signal type>] tables")
    out: dict[str, dict[str, Any]] = {}
    for name, table in raw.items():
        if name not in signal_types.names():
            raise ConfigError(f"{path}: signals.{name}: not a signal type")
        if not isinstance(table, dict) or not all(
            isinstance(v, str | int | float | bool) for v in table.values()
        ):
            raise ConfigError(f"{path}: signals.{name}: a table of plain settings")
        out[name] = dict(table)
    return out


def load(path: Path) -> NodeConfig:
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"no configuration at {path} (run 'blindmatch init')") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the configuration is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from None
    known = {
        "node_id", "home", "listen", "api_listen", "database", "roster", "governance_keys",
        "governance_threshold", "tls_cert", "tls_key", "tls_ca", "roster_check_interval_s",
        "hub_name", "hub_contact", "privacy_url",
        "sync_interval_s", "match_workers",
        "lsh_scheme", "dihedral_queries", "derivative_search", "release_bands", "policy",
        "webhook_url", "webhook_secret_file", "voprf_key_cap", "key_overlap_days",
        "index_batch_days", "index_batch_padding", "index_tile_batch_days", "signals",
    }  # fmt: skip
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}")
    base = path.parent

    def p(v: Any) -> Path | None:
        return None if v in (None, "") else (base / str(v)).resolve()

    try:
        cfg = NodeConfig(
            node_id=raw["node_id"],
            home=p(raw.get("home", ".")) or base,
            database=raw.get("database", ""),
            roster_path=p(raw.get("roster")),
            governance_keys=[bytes.fromhex(k) for k in raw.get("governance_keys", [])],
            governance_threshold=int(raw.get("governance_threshold", 1)),
            tls_cert=p(raw.get("tls_cert")),
            tls_key=p(raw.get("tls_key")),
            tls_ca=p(raw.get("tls_ca")),
            roster_check_interval_s=float(raw.get("roster_check_interval_s", 10.0)),
            hub_name=_short_text(raw.get("hub_name"), "hub_name"),
            hub_contact=_short_text(raw.get("hub_contact"), "hub_contact"),
            privacy_url=_short_text(raw.get("privacy_url"), "privacy_url"),
            sync_interval_s=float(raw.get("sync_interval_s", 5.0)),
            match_workers=int(raw.get("match_workers", 4)),
            lsh_scheme=str(raw.get("lsh_scheme", "pdq-lsh-1")),
            dihedral_queries=bool(raw.get("dihedral_queries", True)),
            derivative_search=bool(raw.get("derivative_search", True)),
            release_bands=tuple(int(b) for b in raw.get("release_bands", (8, 16, 31))),
            policy_path=p(raw.get("policy")),
            webhook_url=raw.get("webhook_url") or None,
            webhook_secret_path=p(raw.get("webhook_secret_file")),
            voprf_key_cap=int(raw.get("voprf_key_cap", LIFETIME_CAP)),
            key_overlap_s=int(float(raw.get("key_overlap_days", 7)) * 86_400),
            index_batch_s=_batch_seconds(raw.get("index_batch_days", 0)),
            index_batch_padding=int(raw.get("index_batch_padding", 0)),
            index_tile_batch_s=(
                _batch_seconds(raw["index_tile_batch_days"], "index_tile_batch_days")
                if "index_tile_batch_days" in raw
                else default_tile_batch_s(_batch_seconds(raw.get("index_batch_days", 0)))
            ),
            signal_options=_signal_options(raw.get("signals", {}), path),
            source_path=path,
        )
    except KeyError as exc:
        raise ConfigError(f"{path}: missing setting {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if "listen" in raw:
        cfg.listen_host, cfg.listen_port = _hostport(raw["listen"], "listen")
    if "api_listen" in raw:
        cfg.api_host, cfg.api_port = _hostport(raw["api_listen"], "api_listen")
    cfg.validate()
    return cfg


def dump(cfg: NodeConfig) -> str:
    lines = [
        f'node_id = "{cfg.node_id}"',
        'home = "."',
        f'listen = "{cfg.listen_host}:{cfg.listen_port}"',
        f'api_listen = "{cfg.api_host}:{cfg.api_port}"',
    ]
    if cfg.database:
        lines.append(f'database = "{cfg.database}"')
    if cfg.roster_path:
        lines.append(f'roster = "{cfg.roster_path}"')
    for name, path in (("tls_cert", cfg.tls_cert), ("tls_key", cfg.tls_key),
                       ("tls_ca", cfg.tls_ca)):  # fmt: skip
        if path is not None:
            lines.append(f"{name} = {json.dumps(str(path))}")
    if cfg.governance_keys:
        keys = ", ".join(f'"{k.hex()}"' for k in cfg.governance_keys)
        lines.append(f"governance_keys = [{keys}]")
        lines.append(f"governance_threshold = {cfg.governance_threshold}")
    for name, text in (("hub_name", cfg.hub_name), ("hub_contact", cfg.hub_contact),
                       ("privacy_url", cfg.privacy_url)):  # fmt: skip
        if text is not None:
            lines.append(f"{name} = {json.dumps(text)}")
    lines.append(f"sync_interval_s = {cfg.sync_interval_s}")
    lines.append(f"release_bands = [{', '.join(str(b) for b in cfg.release_bands)}]")
    lines += [
        "# Index additions go out in batches padded with decoys (spec 8.7): 7 days and 163840",
        "# keep a fresh hash from colluding members at platform volume; 0 and 0 publish each",
        "# addition at once, unprotected (a demo). Tiles (41 cells, each padded) go out in",
        "# batches of their own, every 90 days: weekly would add 200 GB a year to every replica.",
        f"index_batch_days = {cfg.index_batch_s / 86_400:g}",
        f"index_batch_padding = {cfg.index_batch_padding}",
        f"index_tile_batch_days = {cfg.index_tile_batch_s / 86_400:g}",
    ]
    for name, table in cfg.signal_options.items():  # TOML tables come last
        lines.append(f"[signals.{json.dumps(name)}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"
