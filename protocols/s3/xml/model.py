"""The response models S3 XML documents are rendered from."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

from protocols.s3.xml.common import url_encode


@dataclass(frozen=True, slots=True)
class Owner:
    """An object/bucket owner (``<Owner><ID/><DisplayName/></Owner>``)."""

    id: str
    display_name: str | None = None


@dataclass(frozen=True, slots=True)
class BucketInfo:
    """One bucket of ListBuckets."""

    name: str
    creation_date: dt.datetime
    region: str | None = None


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One ``<Contents>`` entry of ListObjects (v1 and v2)."""

    key: str
    last_modified: dt.datetime
    etag: str
    size: int
    storage_class: str = "STANDARD"
    owner: Owner | None = None
    checksum_algorithm: str | None = None
    checksum_type: str | None = None


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One ``<Version>`` or, with ``is_delete_marker``, ``<DeleteMarker>`` entry."""

    key: str
    version_id: str
    is_latest: bool
    last_modified: dt.datetime
    etag: str | None = None
    size: int = 0
    is_delete_marker: bool = False
    storage_class: str = "STANDARD"
    owner: Owner | None = None


@dataclass(frozen=True, slots=True)
class PartInfo:
    """One ``<Part>`` of ListParts. ``checksums`` maps algorithm (``CRC32``...) to base64."""

    part_number: int
    last_modified: dt.datetime
    etag: str
    size: int
    checksums: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UploadInfo:
    """One ``<Upload>`` of ListMultipartUploads."""

    key: str
    upload_id: str
    initiated: dt.datetime
    storage_class: str = "STANDARD"
    owner: Owner | None = None
    initiator: Owner | None = None
    checksum_algorithm: str | None = None


@dataclass(frozen=True, slots=True)
class DeletedObject:
    """A ``<Deleted>`` entry of DeleteResult."""

    key: str
    version_id: str | None = None
    delete_marker: bool = False
    delete_marker_version_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteError:
    """An ``<Error>`` entry of DeleteResult."""

    key: str
    code: str
    message: str
    version_id: str | None = None


def _owner(owner: Owner | None) -> dict[str, Any] | None:
    if owner is None:
        return None
    return {"ID": owner.id, "DisplayName": owner.display_name}


def _checksum_elements(checksums: Mapping[str, str] | None) -> dict[str, str]:
    # {"crc32": "..."} -> {"ChecksumCRC32": "..."}; S3 spells algorithms in capitals.
    return {f"Checksum{alg.upper()}": value for alg, value in (checksums or {}).items()}


class _Encoder:
    """Applies ``encoding-type=url`` to the fields S3 encodes, and nothing else."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    @overload
    def __call__(self, value: str) -> str: ...
    @overload
    def __call__(self, value: None) -> None: ...

    def __call__(self, value: str | None) -> str | None:
        if value is None or not self.enabled:
            return value
        return url_encode(value)


def _common_prefixes(prefixes: Iterable[str], enc: _Encoder) -> list[dict[str, Any]]:
    return [{"Prefix": enc(p)} for p in prefixes]



@dataclass(frozen=True, slots=True)
class CORSRule:
    """One CORSRule of a bucket's CORS configuration."""

    origins: tuple[str, ...]
    methods: tuple[str, ...]
    headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form the bucket stores."""
        return {"id": self.id, "origins": list(self.origins), "methods": list(self.methods),
                "headers": list(self.headers), "expose": list(self.expose_headers),
                "max_age": self.max_age}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CORSRule:
        """The rule :meth:`as_dict` stored."""
        return cls(
            origins=tuple(data.get("origins") or ()), methods=tuple(data.get("methods") or ()),
            headers=tuple(data.get("headers") or ()),
            expose_headers=tuple(data.get("expose") or ()), max_age=data.get("max_age"),
            id=data.get("id"),
        )


