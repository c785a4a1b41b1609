"""S3 XML parsing, hardened: bodies are capped in size, any DTD (``<!DOCTYPE``/
``<!ENTITY``, the vehicle of billion-laughs and external-entity attacks) is
refused, elements are accepted with or without a namespace, and anything
unexpected is a MalformedXML :class:`~protocols.s3.errors.S3Error`.  It uses
expat directly (stdlib) with handlers that abort on declarations.
"""

from __future__ import annotations

import xml.parsers.expat as expat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NoReturn
from xml.etree.ElementTree import Element, TreeBuilder

from protocols.s3.errors import S3Error, invalid_argument, malformed_xml
from protocols.s3.xml.common import (
    CORS_METHODS,
    MAX_BUCKET_TAGS,
    MAX_COMPLETE_BODY_SIZE,
    MAX_CORS_BODY_SIZE,
    MAX_CORS_RULES,
    MAX_DELETE_BODY_SIZE,
    MAX_DELETE_OBJECTS,
    MAX_OBJECT_TAGS,
    MAX_PART_NUMBER,
    MAX_TAG_KEY_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    MAX_XML_BODY_SIZE,
    MAX_XML_DEPTH,
    unquote_etag,
)
from protocols.s3.xml.model import CORSRule

# ====================================================================================
# Safe parsing
# ====================================================================================


class _Forbidden(Exception):
    """Raised from expat handlers to abort on a DTD construct or excessive nesting."""


def _forbid(*_args: object) -> NoReturn:
    raise _Forbidden("DTD declarations are not allowed")


def _local(name: str) -> str:
    # expat reports "namespace}local" because of namespace_separator="}".
    return name.rpartition("}")[2]


def parse_xml(body: bytes, *, max_size: int = MAX_XML_BODY_SIZE) -> Element:
    """Parse an XML request body into an ElementTree element, safely.

    Tags are reduced to their local names (any namespace is accepted), attributes are
    dropped. Raises MaxMessageLengthExceeded over ``max_size`` bytes and MalformedXML
    for empty, ill-formed, DTD-bearing or over-nested (> 32 levels) documents.
    """
    if len(body) > max_size:
        raise S3Error("MaxMessageLengthExceeded", detail=f"XML body over {max_size} bytes")
    if not body.strip():
        raise malformed_xml("empty body")
    # Cheap early refusal; the expat handlers below are the real guard (they also see
    # declarations in other encodings such as UTF-16).
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise malformed_xml("DTD declarations are not allowed")

    builder = TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True
    parser.StartDoctypeDeclHandler = _forbid
    parser.EntityDeclHandler = _forbid
    parser.UnparsedEntityDeclHandler = _forbid
    parser.NotationDeclHandler = _forbid
    parser.ExternalEntityRefHandler = _forbid
    depth = 0

    def start(name: str, _attrs: object) -> None:
        nonlocal depth
        depth += 1
        if depth > MAX_XML_DEPTH:  # S3 documents are shallow; deep nesting is an attack
            raise _Forbidden(f"elements nested deeper than {MAX_XML_DEPTH}")
        builder.start(_local(name), {})

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1
        builder.end(_local(name))

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(body, True)
    except _Forbidden as exc:
        raise malformed_xml(str(exc)) from None
    except (expat.ExpatError, ValueError) as exc:
        raise malformed_xml(str(exc)) from None
    return builder.close()


def _expect_root(root: Element, name: str) -> None:
    if root.tag != name:
        raise malformed_xml(f"root element is <{root.tag}>, expected <{name}>")


def _check_container(elem: Element) -> None:
    # A container holds elements only; stray text means the document is not ours.
    if elem.text and elem.text.strip():
        raise malformed_xml(f"unexpected text in <{elem.tag}>")
    for child in elem:
        if child.tail and child.tail.strip():
            raise malformed_xml(f"unexpected text after <{child.tag}>")


def _leaf_text(elem: Element) -> str:
    if len(elem):
        raise malformed_xml(f"<{elem.tag}> must not contain elements")
    return elem.text or ""


def _leaf_fields(elem: Element, allowed: Iterable[str], *, prefix_ok: str = "") -> dict[str, str]:
    """Map each child of ``elem`` to its text; unknown or repeated children are errors.

    Children whose name starts with ``prefix_ok`` (when given) are accepted too.
    """
    _check_container(elem)
    allowed_set = set(allowed)
    fields: dict[str, str] = {}
    for child in elem:
        if child.tag not in allowed_set and not (prefix_ok and child.tag.startswith(prefix_ok)):
            raise malformed_xml(f"unexpected <{child.tag}> in <{elem.tag}>")
        if child.tag in fields:
            raise malformed_xml(f"repeated <{child.tag}> in <{elem.tag}>")
        fields[child.tag] = _leaf_text(child)
    return fields


def _parse_bool(text: str, where: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise malformed_xml(f"<{where}> must be true or false")
    return value == "true"


@dataclass(frozen=True, slots=True)
class CreateBucketConfiguration:
    """The parsed body of CreateBucket (``None`` constraint when absent)."""

    location_constraint: str | None = None


def parse_create_bucket(
    body: bytes, *, max_size: int = MAX_XML_BODY_SIZE
) -> CreateBucketConfiguration:
    """Parse a CreateBucketConfiguration body; an empty body means no constraint."""
    if not body.strip():
        return CreateBucketConfiguration()
    root = parse_xml(body, max_size=max_size)
    _expect_root(root, "CreateBucketConfiguration")
    _check_container(root)
    location: str | None = None
    seen: set[str] = set()
    for child in root:
        if child.tag in seen:
            raise malformed_xml(f"repeated <{child.tag}>")
        seen.add(child.tag)
        if child.tag == "LocationConstraint":
            location = _leaf_text(child).strip() or None
        elif child.tag in ("Location", "Bucket", "Tags"):
            # Directory-bucket and tagging settings: well-formed, accepted, not used here.
            continue
        else:
            raise malformed_xml(f"unexpected <{child.tag}> in CreateBucketConfiguration")
    return CreateBucketConfiguration(location)


@dataclass(frozen=True, slots=True)
class ObjectIdentifier:
    """One ``<Object>`` of a DeleteObjects request. Conditional fields are kept raw."""

    key: str
    version_id: str | None = None
    etag: str | None = None
    last_modified_time: str | None = None
    size: int | None = None


@dataclass(frozen=True, slots=True)
class DeleteObjectsRequest:
    """The parsed body of DeleteObjects."""

    objects: list[ObjectIdentifier]
    quiet: bool = False


def parse_delete_objects(
    body: bytes, *, max_size: int = MAX_DELETE_BODY_SIZE
) -> DeleteObjectsRequest:
    """Parse a DeleteObjects ``<Delete>`` body: 1..1000 objects and an optional Quiet.

    Keys are returned exactly as sent (whitespace included); validating them is the
    caller's business.
    """
    root = parse_xml(body, max_size=max_size)
    _expect_root(root, "Delete")
    _check_container(root)
    objects: list[ObjectIdentifier] = []
    quiet: bool | None = None
    for child in root:
        if child.tag == "Object":
            if len(objects) >= MAX_DELETE_OBJECTS:
                raise malformed_xml(f"more than {MAX_DELETE_OBJECTS} objects")
            fields = _leaf_fields(child, ("Key", "VersionId", "ETag", "LastModifiedTime", "Size"))
            if "Key" not in fields:
                raise malformed_xml("<Object> without <Key>")
            size: int | None = None
            if "Size" in fields:
                try:
                    size = int(fields["Size"].strip())
                except ValueError:
                    raise malformed_xml("<Size> must be an integer") from None
            objects.append(
                ObjectIdentifier(
                    key=fields["Key"],
                    version_id=fields.get("VersionId", "").strip() or None,
                    etag=fields.get("ETag"),
                    last_modified_time=fields.get("LastModifiedTime"),
                    size=size,
                )
            )
        elif child.tag == "Quiet":
            if quiet is not None:
                raise malformed_xml("repeated <Quiet>")
            quiet = _parse_bool(_leaf_text(child), "Quiet")
        else:
            raise malformed_xml(f"unexpected <{child.tag}> in <Delete>")
    if not objects:
        raise malformed_xml("no <Object> in <Delete>")
    return DeleteObjectsRequest(objects, bool(quiet))


@dataclass(frozen=True, slots=True)
class CompletedPart:
    """One ``<Part>`` of CompleteMultipartUpload; ``etag`` is unquoted, ``checksums``
    maps lower-case algorithm names (``crc32``...) to their base64 values."""

    part_number: int
    etag: str
    checksums: Mapping[str, str] = field(default_factory=dict)


def parse_complete_multipart(
    body: bytes, *, max_size: int = MAX_COMPLETE_BODY_SIZE
) -> list[CompletedPart]:
    """Parse a CompleteMultipartUpload body into its parts, in document order.

    Every part needs a PartNumber (1..10000) and an ETag. Ordering and duplicates are
    left to the caller (they are InvalidPartOrder/InvalidPart, not MalformedXML).
    """
    root = parse_xml(body, max_size=max_size)
    _expect_root(root, "CompleteMultipartUpload")
    _check_container(root)
    parts: list[CompletedPart] = []
    for child in root:
        if child.tag != "Part":
            raise malformed_xml(f"unexpected <{child.tag}> in <CompleteMultipartUpload>")
        if len(parts) >= MAX_PART_NUMBER:
            raise malformed_xml(f"more than {MAX_PART_NUMBER} parts")
        fields = _leaf_fields(child, ("PartNumber", "ETag"), prefix_ok="Checksum")
        if "PartNumber" not in fields or "ETag" not in fields:
            raise malformed_xml("<Part> needs <PartNumber> and <ETag>")
        raw_number = fields["PartNumber"].strip()
        if not raw_number.isascii() or not raw_number.isdigit():
            raise malformed_xml("<PartNumber> must be an integer")
        number = int(raw_number)
        if not 1 <= number <= MAX_PART_NUMBER:
            raise invalid_argument(
                "Part number must be an integer between 1 and 10000, inclusive",
                "partNumber",
                raw_number,
            )
        etag = unquote_etag(fields["ETag"])
        if not etag:
            raise malformed_xml("empty <ETag>")
        checksums = {
            name[len("Checksum") :].lower(): value.strip()
            for name, value in fields.items()
            if name.startswith("Checksum") and name != "ChecksumType"
        }
        parts.append(CompletedPart(number, etag, checksums))
    if not parts:
        raise malformed_xml("no <Part> in <CompleteMultipartUpload>")
    return parts


@dataclass(frozen=True, slots=True)
class VersioningConfiguration:
    """The parsed body of PutBucketVersioning; ``None`` fields were absent."""

    status: str | None = None
    mfa_delete: str | None = None


def parse_versioning_configuration(
    body: bytes, *, max_size: int = MAX_XML_BODY_SIZE
) -> VersioningConfiguration:
    """Parse a VersioningConfiguration body (Status: Enabled|Suspended)."""
    root = parse_xml(body, max_size=max_size)
    _expect_root(root, "VersioningConfiguration")
    fields = _leaf_fields(root, ("Status", "MfaDelete"))
    status = fields["Status"].strip() if "Status" in fields else None
    mfa = fields["MfaDelete"].strip() if "MfaDelete" in fields else None
    if status is not None and status not in ("Enabled", "Suspended"):
        raise malformed_xml("<Status> must be Enabled or Suspended")
    if mfa is not None and mfa not in ("Enabled", "Disabled"):
        raise malformed_xml("<MfaDelete> must be Enabled or Disabled")
    return VersioningConfiguration(status, mfa)


def _invalid_tag(message: str) -> S3Error:
    return S3Error("InvalidTag", message)


def validate_tags(pairs: Sequence[tuple[str, str]], *, max_tags: int) -> dict[str, str]:
    """Apply S3's tag rules to ``(key, value)`` pairs; the tags as a dict.

    At most ``max_tags`` tags, keys of 1..128 characters not starting with
    ``aws:``, values of 0..256 characters, no key twice; else 400 InvalidTag.
    """
    if len(pairs) > max_tags:
        raise _invalid_tag(f"Object tags cannot be greater than {max_tags}"
                           if max_tags == MAX_OBJECT_TAGS
                           else f"Bucket tag count cannot be greater than {max_tags}")
    tags: dict[str, str] = {}
    for key, value in pairs:
        if not key:
            raise _invalid_tag("The TagKey you have provided is invalid")
        if len(key) > MAX_TAG_KEY_LENGTH:
            raise _invalid_tag(f"The TagKey you have provided is too long, max "
                               f"{MAX_TAG_KEY_LENGTH}")
        if len(value) > MAX_TAG_VALUE_LENGTH:
            raise _invalid_tag(f"The TagValue you have provided is too long, max "
                               f"{MAX_TAG_VALUE_LENGTH}")
        if key.lower().startswith("aws:"):
            raise _invalid_tag("Your TagKey cannot be prefixed with aws:")
        # Only x-amz-tagging can carry a NUL (XML cannot); the database cannot store one.
        if "\x00" in key:
            raise _invalid_tag("The TagKey you have provided is invalid")
        if "\x00" in value:
            raise _invalid_tag("The TagValue you have provided is invalid")
        if key in tags:
            raise _invalid_tag("Cannot provide multiple Tags with the same key")
        tags[key] = value
    return tags


def parse_tagging(
    body: bytes, *, max_tags: int = MAX_OBJECT_TAGS, max_size: int = MAX_XML_BODY_SIZE
) -> dict[str, str]:
    """Parse a ``<Tagging><TagSet><Tag><Key/><Value/></Tag>...`` body into validated tags."""
    root = parse_xml(body, max_size=max_size)
    _expect_root(root, "Tagging")
    _check_container(root)
    if len(root) != 1 or root[0].tag != "TagSet":
        raise malformed_xml("<Tagging> must hold exactly one <TagSet>")
    tag_set = root[0]
    _check_container(tag_set)
    pairs: list[tuple[str, str]] = []
    for child in tag_set:
        if child.tag != "Tag":
            raise malformed_xml(f"unexpected <{child.tag}> in <TagSet>")
        if len(pairs) > MAX_BUCKET_TAGS:
            # Bounded before validation so a huge TagSet costs nothing more.
            break
        fields = _leaf_fields(child, ("Key", "Value"))
        if "Key" not in fields or "Value" not in fields:
            raise malformed_xml("<Tag> needs <Key> and <Value>")
        pairs.append((fields["Key"], fields["Value"]))
    return validate_tags(pairs, max_tags=max_tags)


@dataclass(frozen=True, slots=True)
class Grant:
    """One ``<Grant>`` of an AccessControlPolicy: the grantee's kind and identity."""

    grantee_kind: str  # "ID", "EmailAddress" or "URI"
    grantee: str
    permission: str


@dataclass(frozen=True, slots=True)
class AccessControlPolicy:
    """The parsed body of PutBucketAcl / PutObjectAcl."""

    owner_id: str | None
    grants: list[Grant]


_PERMISSIONS = ("FULL_CONTROL", "WRITE", "WRITE_ACP", "READ", "READ_ACP")


def _malformed_acl(detail: str) -> S3Error:
    return S3Error("MalformedACLError", detail=detail)


def parse_access_control_policy(
    body: bytes, *, max_size: int = MAX_XML_BODY_SIZE
) -> AccessControlPolicy:
    """Parse an AccessControlPolicy; MalformedACLError if it is not one.

    The grantee's ``xsi:type`` attribute is not kept (the parser drops
    attributes): its kind is told by which identifying element it holds.
    """
    try:
        root = parse_xml(body, max_size=max_size)
    except S3Error as exc:
        if exc.code != "MalformedXML":
            raise
        raise _malformed_acl(exc.detail or "not XML") from None
    if root.tag != "AccessControlPolicy":
        raise _malformed_acl(f"root element is <{root.tag}>")
    owner_id: str | None = None
    grants: list[Grant] = []
    try:
        _check_container(root)
        for child in root:
            if child.tag == "Owner":
                owner_id = _leaf_fields(child, ("ID", "DisplayName")).get("ID", "").strip()
            elif child.tag == "AccessControlList":
                _check_container(child)
                for grant in child:
                    if grant.tag != "Grant" or len(grants) >= 100:
                        raise malformed_xml("bad <AccessControlList>")
                    grants.append(_parse_grant(grant))
            else:
                raise malformed_xml(f"unexpected <{child.tag}>")
    except S3Error as exc:
        if exc.code != "MalformedXML":
            raise
        raise _malformed_acl(exc.detail or "") from None
    return AccessControlPolicy(owner_id, grants)


def _parse_grant(grant: Element) -> Grant:
    _check_container(grant)
    grantee: Element | None = None
    permission: str | None = None
    for child in grant:
        if child.tag == "Grantee" and grantee is None:
            grantee = child
        elif child.tag == "Permission" and permission is None:
            permission = _leaf_text(child).strip()
        else:
            raise malformed_xml(f"unexpected <{child.tag}> in <Grant>")
    if grantee is None or permission not in _PERMISSIONS:
        raise malformed_xml("<Grant> needs a <Grantee> and a valid <Permission>")
    fields = _leaf_fields(grantee, ("ID", "DisplayName", "EmailAddress", "URI"))
    for kind in ("ID", "EmailAddress", "URI"):
        if kind in fields:
            return Grant(kind, fields[kind].strip(), permission)
    raise malformed_xml("<Grantee> without ID, EmailAddress or URI")


def _one_wildcard(kind: str, value: str) -> str:
    if value.count("*") > 1:
        raise S3Error("InvalidRequest", f'{kind} "{value}" can not have more than one wildcard.')
    return value


def parse_cors_configuration(
    body: bytes, *, max_size: int = MAX_CORS_BODY_SIZE
) -> list[CORSRule]:
    """Parse a CORSConfiguration: 1..100 rules, each with methods and origins.

    A method S3 does not know, or a second ``*`` in an origin or header, is
    S3's 400 InvalidRequest; anything structurally wrong is MalformedXML.
    """
    root = parse_xml(body, max_size=max_size)
    _expect_root(root, "CORSConfiguration")
    _check_container(root)
    rules: list[CORSRule] = []
    for child in root:
        if child.tag != "CORSRule":
            raise malformed_xml(f"unexpected <{child.tag}> in <CORSConfiguration>")
        if len(rules) >= MAX_CORS_RULES:
            raise malformed_xml(f"more than {MAX_CORS_RULES} rules")
        rules.append(_parse_cors_rule(child))
    if not rules:
        raise malformed_xml("no <CORSRule>")
    return rules


def _parse_cors_rule(elem: Element) -> CORSRule:
    _check_container(elem)
    lists: dict[str, list[str]] = {
        "AllowedOrigin": [], "AllowedMethod": [], "AllowedHeader": [], "ExposeHeader": []}
    single: dict[str, str] = {}
    for child in elem:
        text = _leaf_text(child).strip()
        if child.tag in lists:
            lists[child.tag].append(text)
        elif child.tag in ("ID", "MaxAgeSeconds") and child.tag not in single:
            single[child.tag] = text
        else:
            raise malformed_xml(f"unexpected <{child.tag}> in <CORSRule>")
    if not lists["AllowedOrigin"] or not lists["AllowedMethod"]:
        raise malformed_xml("<CORSRule> needs <AllowedOrigin> and <AllowedMethod>")
    for method in lists["AllowedMethod"]:
        if method not in CORS_METHODS:
            raise S3Error("InvalidRequest", "Found unsupported HTTP method in CORS config. "
                          f"Unsupported method is {method}")
    max_age: int | None = None
    if "MaxAgeSeconds" in single:
        raw = single["MaxAgeSeconds"]
        if not raw.isascii() or not raw.isdigit():
            raise malformed_xml("<MaxAgeSeconds> must be a non-negative integer")
        max_age = int(raw)
    rule_id = single.get("ID") or None
    if rule_id is not None and len(rule_id) > 255:
        raise S3Error("InvalidRequest", "The ID of a CORS rule can be at most 255 characters.")
    return CORSRule(
        origins=tuple(_one_wildcard("AllowedOrigin", o) for o in lists["AllowedOrigin"]),
        methods=tuple(dict.fromkeys(lists["AllowedMethod"])),
        headers=tuple(_one_wildcard("AllowedHeader", h) for h in lists["AllowedHeader"]),
        expose_headers=tuple(lists["ExposeHeader"]), max_age=max_age, id=rule_id,
    )
