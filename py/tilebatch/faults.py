"""Which outside failures a retry may cure: database, AWS and file system errors as one-line errors.

The rule: anything about the world (a server refused, timed out, dropped the
connection, throttled, answered 5xx; a full disk, an I/O error) is a JobFailed,
exit 1, which Batch retries. What no retry changes (a missing table or
database, bad credentials, access denied, a read-only store) is a BadInput,
exit 2. When in doubt, JobFailed: a needless retry costs a job, a wrong exit 2
loses a tile.
"""

import errno
import os
import traceback

from .errors import BadInput, JobFailed, TilebatchError

# SQLSTATE classes no retry changes: syntax or access rule (42: a missing
# table or column, no privilege), a missing database (3D), bad authorization
# (28), a missing schema (3F). Everything else (08 connection, 53 resources,
# 57 operator intervention such as statement timeout or shutdown, 58, XX) is
# worth a retry.
_BAD_SQLSTATE_CLASSES = ("42", "3D", "28", "3F")
# What libpq says, with no SQLSTATE, when the connection settings are wrong
# rather than the server unreachable.
_BAD_CONNECT_PHRASES = ("does not exist", "authentication failed", "no pg_hba.conf entry",
                        "not permitted to log in", "invalid port", "invalid connection option",
                        "invalid sslmode", "invalid integer value")

# AWS error codes that mean "too many requests" or "try later", whatever the HTTP status.
_RETRY_AWS_CODES = frozenset((
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "RequestLimitExceeded", "RequestThrottled", "SlowDown",
    "BandwidthLimitExceeded", "PriorRequestNotComplete", "EC2ThrottledException",
    "ProvisionedThroughputExceededException", "TransactionInProgressException",
    "ServerException", "InternalError", "InternalFailure", "ServiceUnavailable", "ServiceUnavailableException",
    "RequestTimeout", "RequestTimeoutException", "ExpiredToken", "ExpiredTokenException",
    "IDPCommunicationError", "ConditionalRequestConflict", "OperationAborted",
))
# ... and the client errors no retry changes.
_BAD_AWS_CLIENT_ERRORS = ("NoCredentialsError", "PartialCredentialsError", "NoRegionError",
                          "ParamValidationError", "InvalidRegionError", "UnknownServiceError",
                          "ProfileNotFound", "InvalidConfigError")

# File system errors that are about the path or its permissions, not the moment.
_BAD_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG)


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def db_error(what: str, e: Exception) -> TilebatchError:
    """A psycopg2 error said in one line: BadInput for a missing table, database or login, else JobFailed."""
    code = getattr(e, "pgcode", None) or ""
    message = f"{what}: {first_line(e)}"
    if code[:2] in _BAD_SQLSTATE_CLASSES:
        return BadInput(message)
    if not code and any(p in str(e) for p in _BAD_CONNECT_PHRASES):
        return BadInput(message)
    if type(e).__name__ == "ProgrammingError" and not code:
        return BadInput(message)
    return JobFailed(message)


def aws_error(what: str, e: Exception) -> TilebatchError:
    """A botocore error said in one line: JobFailed for an outage, throttling or 5xx, else BadInput."""
    response = getattr(e, "response", None)
    if response is not None:  # a ClientError: the service answered
        err = response.get("Error", {})
        code = str(err.get("Code", ""))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        message = f"{what}: {code}: {err.get('Message') or code}"
        if code in _RETRY_AWS_CODES or status == 429 or status >= 500:
            return JobFailed(message)
        return BadInput(message)
    message = f"{what}: {first_line(e)}"
    if isinstance(e, ValueError) or type(e).__name__ in _BAD_AWS_CLIENT_ERRORS:  # ValueError: a setting botocore cannot read
        return BadInput(message)
    return JobFailed(message)  # unreachable endpoint, timeouts, dropped connections


def os_error(what: str, e: OSError) -> TilebatchError:
    """An OSError said in one line: BadInput for a path that cannot be used, JobFailed for a full disk or I/O."""
    reason = e.strerror or first_line(e)
    cls = BadInput if e.errno in _BAD_ERRNOS else JobFailed
    return cls(f"{what}: {reason}")


def one_line_traceback(e: BaseException) -> str:
    """Where an exception came from, outermost call first, in one line."""
    return " > ".join(f"{os.path.basename(f.filename)}:{f.lineno} {f.name}"
                      for f in traceback.extract_tb(e.__traceback__))
