"""Customers' media (voice notes, images, documents, videos, stickers) from the Graph API.

A media message's webhook names the file by a media id (``image.id``, ``audio.id``, ...), never
by its bytes. Fetching it is two requests with the access token: ``GET /{media-id}`` answers
the file's details (a download ``url`` valid for minutes, ``mime_type``, ``file_size``,
``sha256``), then ``GET url`` the bytes. :class:`MediaStore` does both once per file and keeps
the result on disk (``TIERLINE_MEDIA_CACHE_DIR``, files named by the SHA-256 of the media
id): the details beside the bytes, so a page that shows the file needs no Graph call after the
first. A file over ``TIERLINE_MEDIA_MAX_BYTES`` is not downloaded (:class:`MediaTooLarge`;
its declared size is checked first, and the download stops as soon as it passes the limit).
A download whose bytes do not match the declared SHA-256 is refused and not kept.

Who may see a file is decided by the caller (the console serves a ticket's media to the
agents of the ticket's team only); :func:`media_of` reads a stored message's reference.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

log = logging.getLogger(__name__)
#: Message types that carry a file to fetch.
MEDIA_KINDS = ("image", "audio", "video", "document", "sticker")
#: Types a browser may show in place (anything else is served as a download).
INLINE_TYPES = frozenset({
    "image/jpeg", "image/png", "image/webp", "image/gif",
    "audio/ogg", "audio/mpeg", "audio/mp4", "audio/aac", "audio/amr", "audio/opus",
    "video/mp4", "video/3gpp"})


#: After the Graph API failed to describe a file, it is not asked again for so long.
RETRY_SECONDS = 30.0


class MediaError(Exception):
    """The file could not be fetched (Graph API error or unreachable, mismatched bytes)."""


class MediaTooLarge(MediaError):
    """The file is over the size limit: it is not downloaded. ``size``: its size, when known."""

    def __init__(self, size: int | None, limit: int) -> None:
        super().__init__(f"media of {size if size is not None else 'more than ' + str(limit)} "
                         f"bytes, over the limit of {limit}")
        self.size, self.limit = size, limit


@dataclass(frozen=True)
class MediaRef:
    """A stored media message's file, as its webhook named it."""

    inbound_id: int
    kind: str
    media_id: str
    mime_type: str
    caption: str = ""
    filename: str = ""


@dataclass(frozen=True)
class MediaInfo:
    """A file's details from the Graph API (``size`` None when it did not say)."""

    media_id: str
    mime_type: str
    size: int | None
    sha256: str | None = None


def media_of(inbound_id: int, kind: str, payload: dict[str, Any]) -> MediaRef | None:
    """The file a stored message carries (``payload``: the message as Meta delivered it), or
    None when it is not a media message or names no media id."""
    if kind not in MEDIA_KINDS:
        return None
    body = payload.get(kind) if isinstance(payload, dict) else None
    media_id = body.get("id") if isinstance(body, dict) else None
    if not isinstance(media_id, str) or not media_id or len(media_id) > 200:
        return None
    text = lambda key: str(body.get(key) or "")[:1024]  # noqa: E731 - one field, as text
    return MediaRef(inbound_id, kind, media_id, text("mime_type") or "application/octet-stream",
                    text("caption"), os.path.basename(text("filename").replace("\\", "/")))


def served_type(mime_type: str) -> str | None:
    """The type a file is served inline as (parameters such as ``codecs`` dropped), or None
    when it must be a download."""
    base = mime_type.split(";")[0].strip().lower()
    return base if base in INLINE_TYPES else None


class MediaStore:
    """Fetch files from the Graph API once each, and keep them in ``cache_dir``."""

    def __init__(self, api_base: str, access_token: str, cache_dir: Path, max_bytes: int,
                 timeout: float = 10.0) -> None:
        self.api_base = api_base.rstrip("/")
        self.cache_dir = Path(cache_dir)
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._headers = {"Authorization": f"Bearer {access_token}"}
        #: media id -> when its details last failed: not asked again for RETRY_SECONDS, so a
        #: Graph API outage costs a ticket page one timeout per file, not one per view.
        self._failed: dict[str, float] = {}

    def _stem(self, media_id: str) -> Path:
        return self.cache_dir / hashlib.sha256(media_id.encode()).hexdigest()

    def _cached(self, media_id: str) -> MediaInfo | None:
        try:
            return MediaInfo(**json.loads(self._stem(media_id).with_suffix(".json").read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def info(self, media_id: str) -> MediaInfo:
        """The file's details: from the cache, else from ``GET /{media-id}`` (then kept)."""
        cached = self._cached(media_id)
        if cached is not None:
            return cached
        info, _ = self._lookup(media_id)
        self._write(self._stem(media_id).with_suffix(".json"), json.dumps(asdict(info)).encode())
        return info

    def file(self, media_id: str) -> tuple[Path, MediaInfo]:
        """The file on disk and its details, downloaded first if it is not there yet;
        :class:`MediaTooLarge` over the limit, :class:`MediaError` when it cannot be had."""
        path = self._stem(media_id).with_suffix(".bin")
        cached = self._cached(media_id)
        if path.exists() and cached is not None:
            return path, cached
        if cached is not None and cached.size is not None and cached.size > self.max_bytes:
            raise MediaTooLarge(cached.size, self.max_bytes)
        info, url = self._lookup(media_id)
        if info.size is not None and info.size > self.max_bytes:
            raise MediaTooLarge(info.size, self.max_bytes)
        data = self._download(url)
        if info.sha256 and hashlib.sha256(data).hexdigest() != info.sha256.lower():
            raise MediaError("the downloaded bytes do not match the file's SHA-256")
        info = MediaInfo(media_id, info.mime_type, len(data), info.sha256)
        self._write(path, data)
        self._write(path.with_suffix(".json"), json.dumps(asdict(info)).encode())
        return path, info

    def _lookup(self, media_id: str) -> tuple[MediaInfo, str]:
        """``GET /{media-id}``: the details and the download URL."""
        failed = self._failed.get(media_id)
        if failed is not None and time.monotonic() - failed < RETRY_SECONDS:
            raise MediaError("the Graph API failed for this file moments ago")
        try:
            info, url = self._ask(media_id)
        except MediaError:
            self._failed[media_id] = time.monotonic()
            raise
        self._failed.pop(media_id, None)
        return info, url

    def _ask(self, media_id: str) -> tuple[MediaInfo, str]:
        try:
            r = httpx.get(f"{self.api_base}/{media_id}", headers=self._headers,
                          timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise MediaError(f"Graph API unreachable: {type(exc).__name__}") from None
        if r.status_code != 200:
            raise MediaError(f"Graph API answered HTTP {r.status_code} for the media's details")
        try:
            body = r.json()
            url = str(body["url"])
            size = body.get("file_size")
            info = MediaInfo(media_id, str(body.get("mime_type") or "application/octet-stream"),
                             int(size) if size is not None else None,
                             str(body["sha256"]) if body.get("sha256") else None)
        except (ValueError, KeyError, TypeError):
            raise MediaError("the Graph API's media details are not as documented") from None
        return info, url

    def _download(self, url: str) -> bytes:
        """The file's bytes, at most ``max_bytes`` of them (:class:`MediaTooLarge` past it)."""
        chunks, total = [], 0
        try:
            with httpx.stream("GET", url, headers=self._headers, timeout=self.timeout) as r:
                if r.status_code != 200:
                    raise MediaError(f"the media download answered HTTP {r.status_code}")
                for chunk in r.iter_bytes():
                    total += len(chunk)
                    if total > self.max_bytes:
                        raise MediaTooLarge(None, self.max_bytes)
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise MediaError(f"the media download failed: {type(exc).__name__}") from None
        return b"".join(chunks)

    def _write(self, path: Path, data: bytes) -> None:
        """Write ``path`` whole or not at all (another process may read it at any moment)."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.cache_dir, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
