"""Object stores for tiles and run records, chosen by URL.

`file:///abs/dir` or `file://relative/dir` is a directory on this machine;
`s3://bucket/prefix` is S3 (or any S3 endpoint: boto3 honours
AWS_ENDPOINT_URL). Both offer the same five operations on keys relative to the
store's root, and both write atomically: a reader sees a whole object or none.
"""

import hashlib
import os
import tempfile
from typing import Iterator, Protocol
from urllib.parse import urlparse

from .errors import BadInput, JobFailed
from .tiles import Tile

KEY_FORMATS = ("hash-prefix", "prefix-hash", "prefix")


class StoreError(BadInput):
    """A store that cannot be used as configured (bad URL, missing bucket, unreachable)."""


class Store(Protocol):
    url: str

    def write(self, key: str, data: bytes) -> None: ...
    def read(self, key: str) -> bytes | None: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str = "") -> Iterator[str]: ...
    def delete(self, key: str) -> None: ...


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


def metatile_store(cfg: dict):
    """The store for metatiles and run records (section `store`)."""
    s = cfg["store"]
    url = f"s3://{s['name']}/{s['path']}" if s["name"] else s["url"]
    return open_store(url, s["key-format-type"], s["date-prefix"], s["region"])


def rawr_sink(cfg: dict):
    """The store the rawr job writes RAWR tiles to (section `rawr.sink`)."""
    s = cfg["rawr"]["sink"]
    url = f"s3://{s['bucket']}/{s['prefix']}" if s["bucket"] else s["url"]
    return open_store(url, region=s["region"])


def rawr_source(cfg: dict):
    """The store meta-high reads RAWR tiles from (section `rawr.source`, else the sink)."""
    s = cfg["rawr"]["source"]
    if s["s3"]["bucket"]:
        return open_store(f"s3://{s['s3']['bucket']}/{s['s3']['prefix']}", region=s["s3"]["region"])
    if s["url"]:
        return open_store(s["url"])
    return rawr_sink(cfg)


def open_store(url: str, key_format: str | None = None, date_prefix: str = "", region: str | None = None):
    """The store at `url`; key_format defaults to hash-prefix on S3 and prefix on files."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        root = parsed.netloc + parsed.path
        if not root:
            raise StoreError(f"bad store URL {url!r}: no directory")
        return FileStore(root, key_format or "prefix", date_prefix)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StoreError(f"bad store URL {url!r}: no bucket")
        return S3Store(parsed.netloc, parsed.path.strip("/"), key_format or "hash-prefix", date_prefix, region)
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

    def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        folder = os.path.dirname(path)
        try:
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        except OSError as e:
            raise StoreError(f"store {self.url}: cannot write {key}: {e.strerror}") from None
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    def read(self, key: str) -> bytes | None:
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._path(key))

    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key that starts with `prefix`, in sorted order."""
        base = os.path.join(self.root, os.path.dirname(prefix))
        for folder, dirs, files in os.walk(base):
            dirs.sort()
            rel = os.path.relpath(folder, self.root)
            for name in sorted(files):
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix) and not name.startswith(".tmp-"):
                    yield key

    def delete(self, key: str) -> None:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass


class S3Store:
    """A bucket and key prefix; a PUT is atomic, so no temporary object is needed."""

    def __init__(self, bucket: str, prefix: str = "", key_format: str = "hash-prefix",
                 date_prefix: str = "", region: str | None = None):
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix
        self.url = f"s3://{bucket}/{prefix}".rstrip("/")
        self.key_format = _check_key_format(key_format)
        self.date_prefix = date_prefix
        self.client = boto3.client(
            "s3",
            region_name=region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            config=Config(retries={"mode": "adaptive", "max_attempts": 5}, connect_timeout=5, read_timeout=60),
        )

    def tile_key(self, tile: Tile, ext: str) -> str:
        return tile_key(tile, ext, self.key_format, self.date_prefix)

    def _full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, what: str, fn, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

        try:
            return fn(Bucket=self.bucket, **kwargs)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchBucket",):
                raise StoreError(f"store {self.url}: bucket {self.bucket!r} does not exist") from None
            if code in ("NoSuchKey", "404", "NotFound"):
                raise KeyError(kwargs.get("Key")) from None
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise StoreError(f"store {self.url}: {what} refused: {code}") from None
            raise JobFailed(f"store {self.url}: {what} failed: {code} {e}") from None
        except EndpointConnectionError:
            endpoint = self.client.meta.endpoint_url
            raise StoreError(f"store {self.url}: cannot reach {endpoint}") from None
        except BotoCoreError as e:
            raise JobFailed(f"store {self.url}: {what} failed: {e}") from None

    def write(self, key: str, data: bytes) -> None:
        self._call(f"write {key}", self.client.put_object, Key=self._full(key), Body=data)

    def read(self, key: str) -> bytes | None:
        try:
            return self._call(f"read {key}", self.client.get_object, Key=self._full(key))["Body"].read()
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
