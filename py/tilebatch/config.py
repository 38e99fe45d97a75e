"""The job configuration: built-in defaults, then config.yaml, then TILEQUEUE__ overrides.

The sections are tilequeue's (store, postgresql, rawr, metatile, batch), plus
`schema` and `aws`, so a tilequeue config and the runbook's environment
variables carry over. Keys match case-insensitively with `-` and `_` alike; the
canonical spelling is the one in SCHEMA. An environment variable
`TILEQUEUE__section__key[__subkey]=value` sets one key, its value parsed as YAML
(`TILEQUEUE__postgresql__dbnames="[gis]"`).

Every value is checked as it is read: its type, the items of a list, and the
range a number must lie in, so that a value that would hang a job or be
silently ignored stops it at once (exit 2, naming key and range). Secrets
(passwords) are read verbatim as strings, never as YAML (`0123` stays `0123`),
and never appear in any message: not even in one saying they do not parse.
"""

import os
import re
from typing import Any, Mapping, NamedTuple

import yaml

from . import log
from .errors import BadInput

ENV_PREFIX = "TILEQUEUE__"
SECRET_KEYS = ("password", "secret-access-key")


class Key(NamedTuple):
    """One configuration key: the types it accepts, its default, and what else a value must be.

    `range` (lowest, highest) bounds an int; `choices` lists the strings
    allowed; `items` is the type every item of a list must be, a non-empty one
    (and the list must not be empty either).
    """

    types: tuple
    default: Any
    range: tuple | None = None
    choices: tuple | None = None
    items: type | None = None


STR, OPT_STR, INT, BOOL = (str,), (str, type(None)), (int,), (bool,)
HOSTS = (str, list)
OPT_INT = (int, type(None))
PORTS = (1, 65535)

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
        "key-format-type": Key(OPT_STR, None, choices=("hash-prefix", "prefix-hash", "prefix")),
    },
    "postgresql": {
        "host": Key(HOSTS, "127.0.0.1", items=str),
        "port": Key(INT, 54329, range=PORTS),
        "dbnames": Key((list,), ["gis"], items=str),
        "user": Key(STR, "postgres"),
        "password": Key(STR, ""),
        # Seconds; libpq would wait forever at 0.
        "connect-timeout": Key(INT, 10, range=(1, 300)),
    },
    "rawr": {
        # RAWR tiles are cut at this zoom; meta-high renders metatiles from it on.
        "group-zoom": Key(INT, 10, range=(8, 12)),
        # The rawr job's own database; each unset key falls back to the postgresql section.
        "postgresql": {
            "host": Key(HOSTS + (type(None),), None, items=str),
            "port": Key(OPT_INT, None, range=PORTS),
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
        # tilequeue's key; 8 (3 zooms a metatile) is the only size tilebatch builds.
        "size": Key(INT, 8, range=(8, 8)),
        # The deepest tile zoom built; unset: the schema's max zoom (Tilezen 16, Shortbread 14).
        # 16 is as deep as RAWR tiles at the group zoom go.
        "max-zoom": Key(OPT_INT, None, range=(3, 16)),
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
        # Jobs are enqueued at this zoom (the planet: 4**zoom jobs), at most rawr.group-zoom.
        "queue-zoom": Key(INT, 7, range=(0, 10)),
        # The region batch-enqueue submits in; unset: AWS_DEFAULT_REGION as boto3 finds it.
        "region": Key(OPT_STR, None),
        # `missing --enqueue` gives a job that ran out of memory 1.5 times what it had, up to this (MiB).
        "max-memory": Key(INT, 30720, range=(128, 1024 * 1024)),
        # ... and cuts a meta-high job whose RAWR tiles add up to more than this (bytes) into z8..z10 parts.
        "split-rawr-bytes": Key(INT, 256 * 1024 * 1024, range=(1, 1 << 40)),
    },
    "aws": {
        # Every AWS call (S3 stores, Batch): seconds to connect, seconds to wait for an answer,
        # and attempts (retrying throttling and 5xx) before a job gives up and exits 1.
        "connect-timeout": Key(INT, 5, range=(1, 300)),
        "read-timeout": Key(INT, 60, range=(1, 3600)),
        "max-attempts": Key(INT, 5, range=(1, 20)),
    },
}


class ConfigError(BadInput):
    """A configuration key or value that cannot be used."""


def norm(name: str) -> str:
    """The matching form of a key: lower case, `_` as `-`."""
    return name.strip().lower().replace("_", "-")


def is_secret(dotted: str) -> bool:
    """Whether the key at a dotted path (any spelling) holds a secret."""
    return norm(dotted.split(".")[-1]) in SECRET_KEYS


def defaults(schema: Mapping = SCHEMA) -> dict:
    """A fresh configuration holding only the defaults."""
    return {k: defaults(v) if isinstance(v, dict) else _copy(v.default) for k, v in schema.items()}


def _copy(value):
    return list(value) if isinstance(value, list) else value


def load(path: str | None = None, environ: Mapping[str, str] | None = None) -> dict:
    """The effective configuration: defaults, then the YAML file at `path`, then environment overrides."""
    env = os.environ if environ is None else environ
    secret_vars = [v for v in env if v.upper().startswith(ENV_PREFIX) and is_secret(v.split("__")[-1])]
    for var in secret_vars:  # masked before anything can go wrong (a password pasted into the wrong variable)
        log.hide(env[var])
    cfg = defaults()
    if path is not None:
        _merge_file(cfg, path)
    for var in sorted(env):
        if var.upper().startswith(ENV_PREFIX):
            names = var[len(ENV_PREFIX):].split("__")
            # A secret arrives as it is (on Batch straight from Secrets Manager): never read as YAML.
            value = env[var] if is_secret(names[-1]) else _parse_yaml(env[var], var)
            set_key(cfg, names, value, var)
    _check_together(cfg)
    return cfg


class _Loader(yaml.SafeLoader):
    """YAML as PyYAML's safe loader reads it, but refusing duplicate keys and
    taking a secret key's value verbatim, as the string written."""

    def construct_mapping(self, node, deep=False):
        if not isinstance(node, yaml.MappingNode):
            return super().construct_mapping(node, deep)
        self.flatten_mapping(node)
        mapping = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                seen = key in mapping
            except TypeError:
                raise yaml.constructor.ConstructorError(None, None, "a key that cannot be a name",
                                                        key_node.start_mark) from None
            if seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {str(key)[:40]}",
                                                        key_node.start_mark)
            if isinstance(key, str) and is_secret(key) and isinstance(value_node, yaml.ScalarNode):
                # `0123` stays 0123, not 83; only an unquoted empty or null means unset.
                plain_null = value_node.style is None and value_node.value in ("", "~", "null", "Null", "NULL")
                mapping[key] = None if plain_null else value_node.value
                log.hide(value_node.value if not plain_null else "")
            else:
                mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_yaml_map)

# PyYAML quotes the characters and names it trips over. A token (`','`,
# `'<block end>'`) says what is wrong; anything longer may be part of a secret.
_QUOTED_RE = re.compile(r"'([^']*)'|\"([^\"]*)\"")
_TOKEN_RE = re.compile(r".{0,2}|<[a-z ]+>")


def _hide_quoted(problem: str) -> str:
    return _QUOTED_RE.sub(lambda m: m.group(0) if _TOKEN_RE.fullmatch(m.group(1) or m.group(2) or "")
                          else "'...'", problem)


def _parse_yaml(text: str, where: str):
    """The value of YAML `text`; a ConfigError naming `where` and the place, never the text itself."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = _hide_quoted(str(getattr(e, "problem", None) or "syntax error").splitlines()[0])
        raise ConfigError(f"{where}: not valid YAML{at}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{where}: not valid here: nested too deeply") from None


def _merge_file(cfg: dict, path: str) -> None:
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except OSError as e:
        raise ConfigError(f"config file {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path}: not UTF-8 text (byte {e.start})") from None
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
    """Set the key at `path` (names in any spelling) to `value`, checking name, type and range."""
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
            node[canon] = _check(value, entry, where, ".".join(names))
        else:
            raise ConfigError(f"{where}: {'.'.join(names[:i + 1])} is a value, not a section")


def _shown(value, name: str) -> str:
    """A value as an error message may show it: never a secret, never more than a line."""
    if is_secret(name):
        return "(a secret, not shown)"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _type_name(t: type) -> str:
    return "null" if t is type(None) else t.__name__


def _check(value, key: Key, where: str, name: str):
    # The runbook's values are strings read back as YAML: a date prefix such as
    # 20180403 arrives as a number and is meant as a string.
    if str in key.types and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    ok = isinstance(value, key.types) and not (isinstance(value, bool) and bool not in key.types)
    if not ok:
        want = " or ".join(_type_name(t) for t in key.types)
        raise ConfigError(f"{where}: {name} must be {want}, got {type(value).__name__} {_shown(value, name)}")
    if key.range and isinstance(value, int) and not isinstance(value, bool):
        lo, hi = key.range
        if not lo <= value <= hi:
            allowed = f"{lo}" if lo == hi else f"{lo}..{hi}"
            raise ConfigError(f"{where}: {name} must be {allowed}, got {value}")
    if key.choices and isinstance(value, str) and value not in key.choices:
        raise ConfigError(f"{where}: {name} must be one of {', '.join(key.choices)}, got {_shown(value, name)}")
    if key.items:
        items = value if isinstance(value, list) else [value] if isinstance(value, str) else []
        if isinstance(value, list) and not value:
            raise ConfigError(f"{where}: {name} must not be an empty list")
        for item in items:
            if not isinstance(item, key.items) or isinstance(item, bool) or not item:
                raise ConfigError(f"{where}: every item of {name} must be a non-empty {key.items.__name__}, "
                                  f"got {_shown(item, name)}")
    return value


def _check_together(cfg: dict) -> None:
    """What no single key can say: the queue zoom lies above the RAWR group zoom."""
    queue_zoom, group_zoom = cfg["batch"]["queue-zoom"], cfg["rawr"]["group-zoom"]
    if queue_zoom > group_zoom:
        raise ConfigError(f"batch.queue-zoom {queue_zoom} must be at most rawr.group-zoom {group_zoom}")


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
        k: masked(v) if isinstance(v, dict) else (log.MASK if k in SECRET_KEYS and v else v)
        for k, v in cfg.items()
    }
