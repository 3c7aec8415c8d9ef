"""The envelope of our list methods' page tokens: a JSON document in unpadded base64url.

Each list method puts its own keys in the document and checks them when a token comes back;
this module only packs and unpacks it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping


class MalformedPageToken(ValueError):
    """The token is not unpadded base64url of a JSON document."""


def pack(document: Mapping[str, object]) -> str:
    raw = json.dumps(document, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unpack(token: str) -> object:
    """The JSON document in ``token`` (any JSON value: the caller checks its shape)."""
    try:
        return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise MalformedPageToken("not a page token") from exc
