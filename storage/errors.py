"""Errors of the storage core.

Protocol adapters translate these into their own formats (S3 XML, each REST
dialect's JSON, SFTP status codes); the core never speaks HTTP.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class: ``code`` is a stable machine name, the message is for people."""

    code = "InternalError"

    def __init__(self, message: str = "", **details: object) -> None:
        super().__init__(message or self.__doc__ or self.code)
        self.message = message or (self.__doc__ or self.code).strip()
        self.details = details


class NoSuchBucket(StorageError):
    """The specified bucket does not exist."""

    code = "NoSuchBucket"


class NoSuchKey(StorageError):
    """The specified key does not exist."""

    code = "NoSuchKey"


class NoSuchVersion(StorageError):
    """The specified version does not exist."""

    code = "NoSuchVersion"


class NoSuchUpload(StorageError):
    """The specified multipart upload does not exist."""

    code = "NoSuchUpload"


class MethodNotAllowed(StorageError):
    """The operation is not allowed on this resource (e.g. a delete marker)."""

    code = "MethodNotAllowed"


class BucketAlreadyExists(StorageError):
    """The requested bucket name is not available."""

    code = "BucketAlreadyExists"


class BucketAlreadyOwnedByYou(StorageError):
    """You already own a bucket with this name."""

    code = "BucketAlreadyOwnedByYou"


class BucketNotEmpty(StorageError):
    """The bucket you tried to delete is not empty."""

    code = "BucketNotEmpty"


class TooManyBuckets(StorageError):
    """You have reached the maximum number of buckets for your account."""

    code = "TooManyBuckets"


class TooManyAccessKeys(StorageError):
    """You have reached the maximum number of access keys for your account."""

    code = "TooManyAccessKeys"


class QuotaExceeded(StorageError):
    """The upload would exceed your plan's storage quota."""

    code = "QuotaExceeded"


class BadDigest(StorageError):
    """The content digest you specified did not match what was received."""

    code = "BadDigest"


class IncompleteBody(StorageError):
    """The request body ended before the declared length."""

    code = "IncompleteBody"


class AccountExists(StorageError):
    """An account with this email already exists."""

    code = "AccountExists"


class AccountSuspended(StorageError):
    """The account is suspended."""

    code = "AccountSuspended"


class PreconditionFailed(StorageError):
    """At least one of the pre-conditions you specified did not hold."""

    code = "PreconditionFailed"


class InvalidRange(StorageError):
    """The requested range is not satisfiable."""

    code = "InvalidRange"


class ServiceUnavailable(StorageError):
    """The service is temporarily unavailable. Please retry later."""

    code = "ServiceUnavailable"

    def __init__(
        self, message: str = "", *, cause: str = "unavailable", retry_after: int = 5,
        detail: str = "", **details: object,
    ) -> None:
        super().__init__(message, **details)
        # What is away ("database", "write quorum", ...): health reports and
        # rate-limited logs are keyed by it.
        self.cause = cause
        # Seconds a client should wait before retrying (the Retry-After header).
        self.retry_after = retry_after
        # For logs only: internals that must not reach clients.
        self.detail = detail
