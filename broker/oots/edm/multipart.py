"""The transport of an evidence response: the QueryResponse and its evidence in one ``multipart/related`` body."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from broker.oots.edm.vocabulary import MEDIA_TYPE


@dataclass(frozen=True)
class Part:
    content_id: str  # without angle brackets
    media_type: str
    body: bytes


def multipart_related(root: Part, attachments: Sequence[Part]) -> tuple[str, bytes]:
    """A ``multipart/related`` body (RFC 2387) with ``root`` as the start part; returns
    (Content-Type header value, body). The boundary is random, so it cannot occur in the parts
    by accident; it is checked anyway."""
    parts = (root, *attachments)
    boundary = f"=_edm_{uuid.uuid4().hex}"
    while any(boundary.encode() in part.body for part in parts):
        boundary = f"=_edm_{uuid.uuid4().hex}"
    chunks: list[bytes] = []
    for part in parts:
        headers = (
            f"--{boundary}\r\n"
            f"Content-Type: {part.media_type}\r\n"
            "Content-Transfer-Encoding: binary\r\n"
            f"Content-ID: <{part.content_id}>\r\n\r\n"
        )
        chunks += [headers.encode("ascii"), part.body, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode("ascii"))
    content_type = f'multipart/related; boundary="{boundary}"; type="{MEDIA_TYPE}"; start="<{root.content_id}>"'
    return content_type, b"".join(chunks)
