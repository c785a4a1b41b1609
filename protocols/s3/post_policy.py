"""Browser-based uploads (POST Object): the form's credentials and its policy, pure.

A POST form carries a base64 JSON policy (an expiration and conditions every
other form field must satisfy) and a signature over that base64 text: SigV4
(``x-amz-algorithm``/``x-amz-credential``/``x-amz-date``/``x-amz-signature``,
what ``generate_presigned_post`` of the AWS SDKs sends) or, as older upload
forms do, ``AWSAccessKeyId`` + ``signature`` (base64 HMAC-SHA1).  Field
names are case-insensitive; the policy's own keys are not.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from protocols.s3 import sigv4
from protocols.s3.errors import S3Error

#: The most bytes all fields before the file may have together.
MAX_FORM_FIELDS_BYTES = 64 * 1024
# Fields the policy does not have to cover (the signature cannot cover itself).
_EXEMPT_FIELDS = frozenset({"policy", "signature", "awsaccesskeyid", "x-amz-signature", "file"})
_EXPIRATION_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z")


@dataclass(frozen=True, slots=True)
class Condition:
    """One ``eq`` / ``starts-with`` condition on a (lower-case) field name."""

    op: Literal["eq", "starts-with"]
    field: str
    value: str

    def holds(self, actual: str) -> bool:
        """Whether ``actual`` (the field's value, "" if absent) satisfies it."""
        if self.op == "eq":
            return actual == self.value
        if self.field == "content-type":
            # A Content-Type condition applies to each of a comma-separated list.
            return all(v.strip().startswith(self.value) for v in actual.split(","))
        return actual.startswith(self.value)

    def __str__(self) -> str:
        return json.dumps([self.op, f"${self.field}", self.value])


@dataclass(frozen=True, slots=True)
class PostPolicy:
    """A decoded policy document."""

    expiration: dt.datetime
    conditions: tuple[Condition, ...]
    length_range: tuple[int, int] | None


@dataclass(frozen=True, slots=True)
class FormCredentials:
    """Who signed the form, and how."""

    access_key: str
    signature: str
    scope: sigv4.CredentialScope | None  # None: the legacy HMAC-SHA1 form


def _invalid_policy(detail: str) -> S3Error:
    return S3Error("InvalidPolicyDocument", f"Invalid Policy: {detail}")


def _policy_failed(detail: str) -> S3Error:
    return S3Error("AccessDenied", f"Invalid according to Policy: {detail}")


def missing_field(name: str) -> S3Error:
    """400 InvalidArgument for a form without field ``name`` (before its file)."""
    return S3Error("InvalidArgument", f"Bucket POST must contain a field named '{name}'.  "
                   "If it is specified, please check the order of the fields.",
                   extra={"ArgumentName": name})


def form_credentials(fields: Mapping[str, str]) -> FormCredentials | None:
    """The signer of a form (lower-case field names), or None for an unsigned one."""
    if "x-amz-credential" in fields or "x-amz-algorithm" in fields:
        algorithm = fields.get("x-amz-algorithm")
        if algorithm != sigv4.ALGORITHM:
            raise S3Error("InvalidArgument", "Only AWS4-HMAC-SHA256 is supported as "
                          "x-amz-algorithm", extra={"ArgumentName": "x-amz-algorithm",
                                                    "ArgumentValue": algorithm or ""})
        for name in ("x-amz-credential", "x-amz-date", "x-amz-signature", "policy"):
            if not fields.get(name):
                raise missing_field(name)
        parts = fields["x-amz-credential"].split("/")
        if len(parts) != 5 or parts[4] != sigv4.TERMINATOR or not parts[0]:
            raise S3Error("InvalidArgument", "x-amz-credential is malformed",
                          extra={"ArgumentName": "x-amz-credential"})
        scope = sigv4.CredentialScope(parts[1], parts[2], parts[3])
        return FormCredentials(parts[0], fields["x-amz-signature"], scope)
    if "awsaccesskeyid" in fields:
        for name in ("signature", "policy"):
            if not fields.get(name):
                raise missing_field(name)
        return FormCredentials(fields["awsaccesskeyid"], fields["signature"], None)
    return None


def verify_signature(creds: FormCredentials, policy_b64: str, secret_key: str) -> None:
    """SignatureDoesNotMatch unless ``creds`` signed ``policy_b64`` with ``secret_key``."""
    message = policy_b64.encode("utf-8", "surrogateescape")
    if creds.scope is not None:
        scope = creds.scope
        key = sigv4.signing_key(secret_key, scope.date, scope.region, scope.service)
        expected = hmac.new(key, message, hashlib.sha256).hexdigest()
    else:
        digest = hmac.new(secret_key.encode(), message, hashlib.sha1).digest()
        expected = base64.b64encode(digest).decode()
    if not hmac.compare_digest(expected.encode(), creds.signature.encode("utf-8", "replace")):
        raise S3Error("SignatureDoesNotMatch")


def _length(value: object) -> int:
    if isinstance(value, bool):
        raise _invalid_policy("Invalid content-length-range")
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and value >= 0:
        return value
    raise _invalid_policy("Invalid content-length-range")


def _field_name(value: object) -> str:
    if not isinstance(value, str) or not value.startswith("$") or len(value) < 2:
        raise _invalid_policy(f"Invalid condition field {value!r}")
    return value[1:].lower()


def parse_policy(policy_b64: str) -> PostPolicy:
    """Decode a form's ``policy`` field; InvalidPolicyDocument if it is malformed."""
    try:
        document = json.loads(base64.b64decode(policy_b64, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise _invalid_policy("the policy is not base64-encoded JSON") from exc
    if not isinstance(document, dict):
        raise _invalid_policy("the policy is not a JSON object")
    expiration = document.get("expiration")
    if not isinstance(expiration, str) or not _EXPIRATION_RE.fullmatch(expiration):
        raise _invalid_policy(f"Invalid 'expiration' value: {expiration!r}")
    moment = dt.datetime.fromisoformat(expiration.replace("Z", "+00:00"))
    raw = document.get("conditions")
    if not isinstance(raw, list):
        raise _invalid_policy("Missing 'conditions' list")
    conditions: list[Condition] = []
    length_range: tuple[int, int] | None = None
    for item in raw:
        if isinstance(item, dict):
            if len(item) != 1:
                raise _invalid_policy("Simple-Conditions must have exactly one property")
            for name, value in item.items():
                if not isinstance(value, str):
                    raise _invalid_policy(f"Invalid condition value for {name!r}")
                conditions.append(Condition("eq", name.lower(), value))
            continue
        if not isinstance(item, list) or not item or not isinstance(item[0], str):
            raise _invalid_policy(f"Invalid condition {item!r}")
        op = item[0].lower()
        if op == "content-length-range":
            if len(item) != 3:
                raise _invalid_policy("content-length-range needs a minimum and a maximum")
            low, high = _length(item[1]), _length(item[2])
            if low > high:
                raise _invalid_policy("Invalid content-length-range")
            length_range = (low, high)
        elif op in ("eq", "starts-with") and len(item) == 3 and isinstance(item[2], str):
            conditions.append(Condition(op, _field_name(item[1]), item[2]))  # type: ignore[arg-type]
        else:
            raise _invalid_policy(f"Invalid condition {item!r}")
    return PostPolicy(moment, tuple(conditions), length_range)


def check_policy(
    policy: PostPolicy, fields: Mapping[str, str], bucket: str, now: dt.datetime
) -> None:
    """AccessDenied unless ``fields`` (lower-case names) satisfy ``policy`` at ``now``.

    The bucket of the URL counts as a field; every other field must be named
    by some condition (``x-ignore-*`` aside), as S3 requires.
    """
    if now >= policy.expiration:
        raise _policy_failed("Policy expired.")
    values = {**fields, "bucket": bucket}
    for condition in policy.conditions:
        if not condition.holds(values.get(condition.field, "")):
            raise _policy_failed(f"Policy Condition failed: {condition}")
    covered = {c.field for c in policy.conditions}
    extra = sorted(
        name for name in values
        if name not in covered and name not in _EXEMPT_FIELDS and not name.startswith("x-ignore-")
    )
    if extra:
        raise _policy_failed(f"Extra input fields: {', '.join(extra)}")
