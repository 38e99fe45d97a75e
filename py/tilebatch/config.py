"""The job configuration: built-in defaults, then config.yaml, then TILEQUEUE__ overrides.

The sections are tilequeue's (store, postgresql, rawr, metatile, batch), plus
`schema`, so a tilequeue config and the runbook's environment variables carry
over. Keys match
case-insensitively with `-` and `_` alike; the canonical spelling is the one in
SCHEMA. An environment variable `TILEQUEUE__section__key[__subkey]=value` sets
one key, its value parsed as YAML (`TILEQUEUE__postgresql__dbnames="[gis]"`).
"""

import os
from typing import Any, Mapping, NamedTuple

import yaml

from .errors import BadInput

ENV_PREFIX = "TILEQUEUE__"
SECRET_KEYS = ("password", "secret-access-key")


class Key(NamedTuple):
    """One configuration key: the types it accepts and its default."""

    types: tuple
    default: Any


STR, OPT_STR, INT, BOOL = (str,), (str, type(None)), (int,), (bool,)
HOSTS = (str, list)

SCHEMA: dict = {
    "store": {
        # Where metatiles (and run records) go: file:///dir, file://relative/dir or s3://bucket/prefix.
        "url": Key(STR, "file://out"),
        # tilequeue's spelling of an S3 store: name = bucket, path = key prefix. Set, they win over url.
        "name": Key(OPT_STR, None),
        "path": Key(STR, ""),
        "region": Key(OPT_STR, None),
        "date-prefix": Key(STR, ""),
        # hash-prefix | prefix-hash | prefix; unset: hash-prefix on S3, prefix on files.
        "key-format-type": Key(OPT_STR, None),
    },
    "postgresql": {
        "host": Key(HOSTS, "127.0.0.1"),
        "port": Key(INT, 54329),
        "dbnames": Key((list,), ["gis"]),
        "user": Key(STR, "postgres"),
        "password": Key(STR, ""),
        "connect-timeout": Key(INT, 10),
    },
    "rawr": {
        "group-zoom": Key(INT, 10),
        # The rawr job's own database; each unset key falls back to the postgresql section.
        "postgresql": {
            "host": Key(HOSTS + (type(None),), None),
            "port": Key((int, type(None)), None),
            "dbname": Key(OPT_STR, None),
            "user": Key(OPT_STR, None),
            "password": Key(OPT_STR, None),
        },
        # Where RAWR tiles are written; bucket set means s3://bucket/prefix.
        "sink": {
            "url": Key(STR, "file://out/rawr"),
            "bucket": Key(OPT_STR, None),
            "region": Key(OPT_STR, None),
            "prefix": Key(STR, ""),
        },
        # Where meta-high reads them; unset means the sink.
        "source": {
            "url": Key(OPT_STR, None),
            "s3": {
                "bucket": Key(OPT_STR, None),
                "region": Key(OPT_STR, None),
                "prefix": Key(STR, ""),
            },
        },
    },
    "metatile": {
        "size": Key(INT, 8),
        # The deepest tile zoom built; unset: the schema's max zoom (Tilezen 16, Shortbread 14).
        "max-zoom": Key((int, type(None)), None),
    },
    "schema": {
        # The tile schema: a built-in name (tilezen, shortbread) or the path of your own YAML file.
        "name": Key(STR, "tilezen"),
    },
    "batch": {
        "job-definition": Key(OPT_STR, None),
        "job-queue": Key(OPT_STR, None),
        "job-name-prefix": Key(STR, "tilebatch"),
        "run_id": Key(OPT_STR, None),
        "queue-zoom": Key(INT, 7),
        # The region batch-enqueue submits in; unset: AWS_DEFAULT_REGION as boto3 finds it.
        "region": Key(OPT_STR, None),
        # `missing --enqueue` gives a job that ran out of memory 1.5 times what it had, up to this (MiB).
        "max-memory": Key(INT, 30720),
        # ... and cuts a meta-high job whose RAWR tiles add up to more than this (bytes) into z8..z10 parts.
        "split-rawr-bytes": Key(INT, 256 * 1024 * 1024),
    },
}


class ConfigError(BadInput):
    """A configuration key or value that cannot be used."""


def norm(name: str) -> str:
    """The matching form of a key: lower case, `_` as `-`."""
    return name.strip().lower().replace("_", "-")


def defaults(schema: Mapping = SCHEMA) -> dict:
    """A fresh configuration holding only the defaults."""
    return {k: defaults(v) if isinstance(v, dict) else _copy(v.default) for k, v in schema.items()}


def _copy(value):
    return list(value) if isinstance(value, list) else value


def load(path: str | None = None, environ: Mapping[str, str] | None = None) -> dict:
    """The effective configuration: defaults, then the YAML file at `path`, then environment overrides."""
    cfg = defaults()
    if path is not None:
        _merge_file(cfg, path)
    env = os.environ if environ is None else environ
    for var in sorted(env):
        if var.upper().startswith(ENV_PREFIX):
            set_key(cfg, var[len(ENV_PREFIX):].split("__"), _parse_yaml(env[var], var), var)
    return cfg


def _parse_yaml(text: str, where: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        problem = str(getattr(e, "problem", None) or e).splitlines()[0]
        raise ConfigError(f"{where}: value {text!r} is not valid YAML ({problem})") from None


def _merge_file(cfg: dict, path: str) -> None:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"config file {path}: {e.strerror}") from None
    data = _parse_yaml(text, f"config file {path}") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of sections, got {type(data).__name__}")
    for section, value in _flatten(data):
        set_key(cfg, section, value, f"{path}: key {'.'.join(section)}")


def _flatten(data: dict, prefix: tuple = ()):
    """(path, value) for every leaf of a nested mapping."""
    for k, v in data.items():
        if isinstance(v, dict) and v:
            yield from _flatten(v, prefix + (str(k),))
        else:
            yield prefix + (str(k),), v


def set_key(cfg: dict, path, value, where: str) -> None:
    """Set the key at `path` (names in any spelling) to `value`, checking name and type."""
    schema, node = SCHEMA, cfg
    names = [norm(p) for p in path]
    for i, name in enumerate(names):
        canon = {norm(k): k for k in schema}.get(name)
        if canon is None:
            known = ", ".join(sorted(schema))
            raise ConfigError(f"{where}: unknown key {'.'.join(names[:i + 1])!r} (known here: {known})")
        entry = schema[canon]
        if isinstance(entry, dict):
            if i == len(names) - 1:
                if not isinstance(value, dict):
                    raise ConfigError(f"{where}: {'.'.join(names)} is a section, not a value")
                for sub, v in _flatten(value):
                    set_key(cfg, list(path) + list(sub), v, where)
                return
            schema, node = entry, node[canon]
        elif i == len(names) - 1:
            node[canon] = _check_type(value, entry, where, ".".join(names))
        else:
            raise ConfigError(f"{where}: {'.'.join(names[:i + 1])} is a value, not a section")


def _check_type(value, key: Key, where: str, name: str):
    # The runbook's values are strings read back as YAML: a date prefix such as
    # 20180403 arrives as a number and is meant as a string.
    if str in key.types and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, bool) and bool not in key.types:
        ok = False
    else:
        ok = isinstance(value, key.types)
    if not ok:
        want = " or ".join("null" if t is type(None) else t.__name__ for t in key.types)
        raise ConfigError(f"{where}: {name} must be {want}, got {type(value).__name__} {value!r}")
    return value


def get(cfg: dict, dotted: str):
    """The value at a dotted path (`store.date-prefix`), names in any spelling."""
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict):
            raise ConfigError(f"unknown key {dotted!r}")
        canon = {norm(k): k for k in node}.get(norm(part))
        if canon is None:
            raise ConfigError(f"unknown key {dotted!r}")
        node = node[canon]
    return node


def masked(cfg: dict) -> dict:
    """A copy with every non-empty secret replaced by asterisks, for printing."""
    return {
        k: masked(v) if isinstance(v, dict) else ("********" if k in SECRET_KEYS and v else v)
        for k, v in cfg.items()
    }
