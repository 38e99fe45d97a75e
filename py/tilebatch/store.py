"""Object stores for tiles and run records, chosen by URL.

`file:///abs/dir` or `file://relative/dir` is a directory on this machine;
`s3://bucket/prefix` is S3 (or any S3 endpoint: boto3 honours
AWS_ENDPOINT_URL). Both offer the same five operations on keys relative to the
store's root, and both write atomically: a reader sees a whole object or none.
`write_new` writes only if the key is not there yet, so two writers cannot
overwrite each other (a hard link on files, a conditional PUT on S3).

Failures say what they mean (faults.py): an unreachable endpoint, throttling
or a full disk is worth a retry (exit 1), a missing bucket or a store that
refuses writes is not (exit 2).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from typing import Iterator, Protocol, runtime_checkable
from urllib.parse import urlparse

from . import config, faults, log
from .errors import BadInput
from .tiles import Tile

KEY_FORMATS = ("hash-prefix", "prefix-hash", "prefix")
TEMP_PREFIX = ".tmp-"  # a file store's writes in progress; never listed, swept when old
# Temporary files older than this are a killed write's, not a live one's: a write takes seconds.
STALE_TEMP_SECONDS = 3600


class StoreError(BadInput):
    """A store that cannot be used as configured (bad URL, missing bucket, unreachable)."""


@runtime_checkable
class Store(Protocol):
    """What every store offers, keys relative to its root; the rest of tilebatch sees only this."""

    url: str

    def tile_key(self, tile: Tile, ext: str) -> str: ...
    def write(self, key: str, data: bytes) -> None: ...
    def write_new(self, key: str, data: bytes) -> bool: ...
    def read(self, key: str) -> bytes | None: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str = "") -> Iterator[str]: ...
    def delete(self, key: str) -> None: ...
    def sweep(self, older_than: float = ...) -> int: ...
    def folders(self, prefix: str) -> list[str]: ...


def tile_key(tile: Tile, ext: str, key_format: str = "prefix", date_prefix: str = "") -> str:
    """The key of a tile-addressed object under a store's root.

    hash-prefix spreads keys over S3 partitions by the first five hex digits of
    md5("z/x/y.ext"): `{hash}/{date-prefix}/{z}/{x}/{y}.{ext}`; prefix-hash puts
    the date prefix first; prefix has no hash. An empty date prefix is left out.
    """
    _check_key_format(key_format)
    path = f"{tile.z}/{tile.x}/{tile.y}.{ext}"
    digest = hashlib.md5(path.encode()).hexdigest()[:5]
    parts = {
        "hash-prefix": [digest, date_prefix, path],
        "prefix-hash": [date_prefix, digest, path],
        "prefix": [date_prefix, path],
    }[key_format]
    return "/".join(p for p in parts if p)


def metatile_store(cfg: dict) -> Store:
    """The store for metatiles and run records (section `store`)."""
    s = cfg["store"]
    url = f"s3://{s['name']}/{s['path']}" if s["name"] else s["url"]
    return open_store(url, s["key-format-type"], s["date-prefix"], s["region"], cfg["aws"])


def rawr_sink(cfg: dict) -> Store:
    """The store the rawr job writes RAWR tiles to (section `rawr.sink`)."""
    s = cfg["rawr"]["sink"]
    url = f"s3://{s['bucket']}/{s['prefix']}" if s["bucket"] else s["url"]
    return open_store(url, region=s["region"], aws=cfg["aws"])


def rawr_source(cfg: dict) -> Store:
    """The store meta-high reads RAWR tiles from (section `rawr.source`, else the sink)."""
    s = cfg["rawr"]["source"]
    if s["s3"]["bucket"]:
        return open_store(f"s3://{s['s3']['bucket']}/{s['s3']['prefix']}", region=s["s3"]["region"],
                          aws=cfg["aws"])
    if s["url"]:
        return open_store(s["url"], aws=cfg["aws"])
    return rawr_sink(cfg)


def open_store(url: str, key_format: str | None = None, date_prefix: str = "", region: str | None = None,
               aws: dict | None = None) -> Store:
    """The store at `url`; key_format defaults to hash-prefix on S3 and prefix on files.

    `aws` is the configuration's `aws` section (timeouts and attempts of every call).
    """
    parsed = urlparse(url)
    if parsed.scheme == "file":
        root = parsed.netloc + parsed.path
        if not root:
            raise StoreError(f"bad store URL {url!r}: no directory")
        return FileStore(root, key_format or "prefix", date_prefix)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StoreError(f"bad store URL {url!r}: no bucket")
        return S3Store(parsed.netloc, parsed.path.strip("/"), key_format or "hash-prefix", date_prefix, region, aws)
    raise StoreError(f"bad store URL {url!r}: expected file:///dir or s3://bucket/prefix")


def _check_key_format(key_format: str) -> str:
    if key_format not in KEY_FORMATS:
        raise StoreError(f"bad key-format-type {key_format!r}: expected one of {', '.join(KEY_FORMATS)}")
    return key_format


class FileStore:
    """A directory; writes go to a temporary file in the same folder, then rename."""

    def __init__(self, root: str, key_format: str = "prefix", date_prefix: str = ""):
        self.root = os.path.abspath(root)
        self.url = "file://" + self.root
        self.key_format = _check_key_format(key_format)
        self.date_prefix = date_prefix

    def tile_key(self, tile: Tile, ext: str) -> str:
        return tile_key(tile, ext, self.key_format, self.date_prefix)

    def _path(self, key: str) -> str:
        path = os.path.normpath(os.path.join(self.root, key))
        if not path.startswith(self.root + os.sep):
            raise StoreError(f"bad key {key!r}: outside the store")
        return path

    def _temp(self, key: str, data: bytes) -> tuple[str, str]:
        """A temporary file beside the key's path holding `data`, flushed to disk: (its path, the key's path)."""
        path = self._path(key)
        folder = os.path.dirname(path)
        try:
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX)
        except OSError as e:
            raise faults.os_error(f"store {self.url}: cannot write {key}", e) from None
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
        except BaseException as e:
            _unlink(tmp)
            if isinstance(e, OSError):
                raise faults.os_error(f"store {self.url}: cannot write {key}", e) from None
            raise
        return tmp, path

    def write(self, key: str, data: bytes) -> None:
        tmp, path = self._temp(key, data)
        try:
            os.replace(tmp, path)
        except BaseException as e:
            _unlink(tmp)
            if isinstance(e, OSError):
                raise faults.os_error(f"store {self.url}: cannot write {key}", e) from None
            raise

    def write_new(self, key: str, data: bytes) -> bool:
        """Write `key` unless it exists: True if written. A hard link never replaces a file."""
        tmp, path = self._temp(key, data)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError as e:
            raise faults.os_error(f"store {self.url}: cannot write {key}", e) from None
        finally:
            _unlink(tmp)

    def read(self, key: str) -> bytes | None:
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise faults.os_error(f"store {self.url}: cannot read {key}", e) from None

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._path(key))

    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key that starts with `prefix`, in sorted order."""
        base = os.path.join(self.root, os.path.dirname(prefix))

        def unreadable(e: OSError) -> None:  # os.walk would leave the folder out, and a listing be short
            if not isinstance(e, FileNotFoundError):
                raise faults.os_error(f"store {self.url}: cannot list {e.filename}", e)

        for folder, dirs, files in os.walk(base, onerror=unreadable):
            dirs.sort()
            rel = os.path.relpath(folder, self.root)
            for name in sorted(files):
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix) and not name.startswith(TEMP_PREFIX):
                    yield key

    def delete(self, key: str) -> None:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise faults.os_error(f"store {self.url}: cannot delete {key}", e) from None

    def sweep(self, older_than: float = STALE_TEMP_SECONDS) -> int:
        """Remove the temporary files that writes killed half-way left, if older than `older_than`
        seconds (younger ones may be another writer's, still at work); how many went."""
        removed = remove_stale((os.path.join(folder, name) for folder, _, files in os.walk(self.root)
                                for name in files if name.startswith(TEMP_PREFIX)), older_than)
        if removed:
            log.info("old temporary files removed", store=self.url, files=removed)
        return removed

    def folders(self, prefix: str) -> list[str]:
        """The names one level below `prefix/` (a folder's sub-folders), sorted."""
        try:
            return sorted(e.name for e in os.scandir(self._path(prefix)) if e.is_dir())
        except FileNotFoundError:
            return []


def remove_stale(paths, older_than: float = STALE_TEMP_SECONDS) -> int:
    """Remove those of these files last changed more than `older_than` seconds ago; how many went."""
    cutoff, removed = time.time() - older_than, 0
    for path in paths:
        try:
            if os.lstat(path).st_mtime < cutoff:
                os.unlink(path)
                removed += 1
        except FileNotFoundError:
            pass
        except OSError as e:
            raise faults.os_error(f"cannot remove the temporary file {path}", e) from None
    return removed


class S3Store:
    """A bucket and key prefix; a PUT is atomic, so no temporary object is needed."""

    def __init__(self, bucket: str, prefix: str = "", key_format: str = "hash-prefix",
                 date_prefix: str = "", region: str | None = None, aws: dict | None = None):
        self.bucket, self.prefix = bucket, prefix
        self.url = f"s3://{bucket}/{prefix}".rstrip("/")
        self.key_format = _check_key_format(key_format)
        self.date_prefix = date_prefix
        self.client = aws_client("s3", region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1", aws,
                                 "store.region, AWS_* settings")

    def tile_key(self, tile: Tile, ext: str) -> str:
        return tile_key(tile, ext, self.key_format, self.date_prefix)

    def _full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, what: str, fn, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(Bucket=self.bucket, **kwargs)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code == "NoSuchBucket":
                raise StoreError(f"store {self.url}: bucket {self.bucket!r} does not exist") from None
            if code in ("NoSuchKey", "404", "NotFound"):
                raise KeyError(kwargs.get("Key")) from None
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise FileExistsError(kwargs.get("Key")) from None
            raise faults.aws_error(f"store {self.url}: {what}", e) from None
        except BotoCoreError as e:
            raise faults.aws_error(f"store {self.url}: {what}", e) from None

    def write(self, key: str, data: bytes) -> None:
        self._call(f"write {key}", self.client.put_object, Key=self._full(key), Body=data)

    def write_new(self, key: str, data: bytes) -> bool:
        """Write `key` unless it exists: True if written (a conditional PUT, If-None-Match: *)."""
        try:
            self._call(f"write {key}", self.client.put_object, Key=self._full(key), Body=data, IfNoneMatch="*")
            return True
        except FileExistsError:
            return False

    def read(self, key: str) -> bytes | None:
        try:
            return self._call(f"read {key}", lambda **kw: self.client.get_object(**kw)["Body"].read(),
                              Key=self._full(key))
        except KeyError:
            return None

    def exists(self, key: str) -> bool:
        try:
            self._call(f"check {key}", self.client.head_object, Key=self._full(key))
            return True
        except KeyError:
            return False

    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key that starts with `prefix`, in S3's (sorted) order."""
        cut = len(self.prefix) + 1 if self.prefix else 0
        token = {}
        while True:
            page = self._call(f"list {prefix}", self.client.list_objects_v2, Prefix=self._full(prefix), **token)
            for obj in page.get("Contents", []):
                yield obj["Key"][cut:]
            if not page.get("IsTruncated"):
                return
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def delete(self, key: str) -> None:
        self._call(f"delete {key}", self.client.delete_object, Key=self._full(key))

    def sweep(self, older_than: float = STALE_TEMP_SECONDS) -> int:
        """Nothing to do: a PUT is atomic, S3 holds no temporary objects."""
        return 0

    def folders(self, prefix: str) -> list[str]:
        """The names one level below `prefix/` (keys grouped at the next `/`), sorted: no key listed one by one."""
        full = self._full(prefix.rstrip("/")) + "/"
        names, token = [], {}
        while True:
            page = self._call(f"list {prefix}", self.client.list_objects_v2, Prefix=full, Delimiter="/", **token)
            names += [p["Prefix"][len(full):].rstrip("/") for p in page.get("CommonPrefixes", [])]
            if not page.get("IsTruncated"):
                return sorted(names)
            token = {"ContinuationToken": page["NextContinuationToken"]}


def aws_client(service: str, region: str | None, aws: dict | None, settings: str):
    """A boto3 client for `service`; a region, profile or endpoint it cannot use is bad input naming
    `settings`, where they come from."""
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        return boto3.client(service, region_name=region, config=client_config(aws))
    except (BotoCoreError, ValueError) as e:  # ValueError: an endpoint URL botocore cannot read (host:port)
        raise faults.aws_error(f"AWS {service} client ({settings})", e) from None


def client_config(aws: dict | None):
    """botocore's settings for every AWS client, from the `aws` section: timeouts, and attempts
    with adaptive backoff, so that throttling slows a job down rather than failing it."""
    from botocore.config import Config

    aws = aws or config.defaults(config.SCHEMA["aws"])
    return Config(retries={"mode": "adaptive", "max_attempts": aws["max-attempts"]},
                  connect_timeout=aws["connect-timeout"], read_timeout=aws["read-timeout"])


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
