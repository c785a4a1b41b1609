"""Errors of the storage core.

Protocol adapters translate these into their own formats (S3 XML, each REST
dialect's JSON, SFTP status codes); the core never speaks HTTP.  Every error
has a :class:`Kind`, so a protocol maps the few kinds to its own statuses
once and a new error needs no new line in every protocol; ``code`` stays for
the protocols (S3 above all) that name errors one by one.
"""

from __future__ import annotations

import enum


class Kind(enum.Enum):
    """What sort of failure an error is, whatever the protocol."""

    INVALID = "invalid"  # the request itself is wrong (400)
    FORBIDDEN = "forbidden"  # not allowed for this caller (403)
    NOT_FOUND = "not_found"  # (404)
    CONFLICT = "conflict"  # the state of the resource refuses it (409)
    PRECONDITION = "precondition"  # a condition the caller set does not hold (412)
    RANGE = "range"  # a range outside the object (416)
    QUOTA = "quota"  # over the account's storage quota (403 in S3, 413/507 elsewhere)
    LIMIT = "limit"  # over a count limit (buckets, keys) (400/409)
    RATE = "rate"  # too many requests (429)
    UNAVAILABLE = "unavailable"  # temporarily unable: retry later (503)
    INTERNAL = "internal"  # a bug or lost data (500)


class StorageError(Exception):
    """Base class: ``code`` is a stable machine name, the message is for people."""

    code = "InternalError"
    kind = Kind.INTERNAL

    def __init__(self, message: str = "", **details: object) -> None:
        super().__init__(message or self.__doc__ or self.code)
        self.message = message or (self.__doc__ or self.code).strip()
        self.details = details


class NoSuchBucket(StorageError):
    """The specified bucket does not exist."""

    code = "NoSuchBucket"
    kind = Kind.NOT_FOUND


class NoSuchKey(StorageError):
    """The specified key does not exist."""

    code = "NoSuchKey"
    kind = Kind.NOT_FOUND


class NoSuchVersion(StorageError):
    """The specified version does not exist."""

    code = "NoSuchVersion"
    kind = Kind.NOT_FOUND


class NoSuchUpload(StorageError):
    """The specified multipart upload does not exist."""

    code = "NoSuchUpload"
    kind = Kind.NOT_FOUND


class MethodNotAllowed(StorageError):
    """The operation is not allowed on this resource (e.g. a delete marker)."""

    code = "MethodNotAllowed"
    kind = Kind.CONFLICT


class BucketAlreadyExists(StorageError):
    """The requested bucket name is not available."""

    code = "BucketAlreadyExists"
    kind = Kind.CONFLICT


class BucketAlreadyOwnedByYou(StorageError):
    """You already own a bucket with this name."""

    code = "BucketAlreadyOwnedByYou"
    kind = Kind.CONFLICT


class BucketNotEmpty(StorageError):
    """The bucket you tried to delete is not empty."""

    code = "BucketNotEmpty"
    kind = Kind.CONFLICT


class TooManyBuckets(StorageError):
    """You have reached the maximum number of buckets for your account."""

    code = "TooManyBuckets"
    kind = Kind.LIMIT


class TooManyAccessKeys(StorageError):
    """You have reached the maximum number of access keys for your account."""

    code = "TooManyAccessKeys"
    kind = Kind.LIMIT


class QuotaExceeded(StorageError):
    """The upload would exceed your plan's storage quota."""

    code = "QuotaExceeded"
    kind = Kind.QUOTA


class BadDigest(StorageError):
    """The content digest you specified did not match what was received."""

    code = "BadDigest"
    kind = Kind.INVALID


class IncompleteBody(StorageError):
    """The request body ended before the declared length."""

    code = "IncompleteBody"
    kind = Kind.INVALID


class AccountExists(StorageError):
    """An account with this email already exists."""

    code = "AccountExists"
    kind = Kind.CONFLICT


class AccountSuspended(StorageError):
    """The account is suspended."""

    code = "AccountSuspended"
    kind = Kind.FORBIDDEN


class PreconditionFailed(StorageError):
    """At least one of the pre-conditions you specified did not hold."""

    code = "PreconditionFailed"
    kind = Kind.PRECONDITION


class InvalidRange(StorageError):
    """The requested range is not satisfiable."""

    code = "InvalidRange"
    kind = Kind.RANGE


class ServiceUnavailable(StorageError):
    """The service is temporarily unavailable. Please retry later."""

    code = "ServiceUnavailable"
    kind = Kind.UNAVAILABLE

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


class InvalidBucketName(StorageError):
    """The specified bucket is not valid."""

    code = "InvalidBucketName"
    kind = Kind.INVALID


class InvalidObjectKey(StorageError):
    """The object key is not acceptable."""

    code = "InvalidArgument"
    kind = Kind.INVALID


class KeyTooLong(StorageError):
    """Your key is too long."""

    code = "KeyTooLongError"
    kind = Kind.INVALID
