"""A JSON parser with limits on body size and nesting depth.

DRF's parser hands the body to ``json.load``, which recurses once per level: ``[[[…]]]`` 100,000
deep raised RecursionError, which nothing caught (a 500). Nesting is counted before parsing and
refused past ``MEDBOT_MAX_JSON_DEPTH``; the body is refused past ``MEDBOT_MAX_JSON_BYTES``. A
question is at most 2,000 characters, so both limits are far above anything the API accepts.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils import json

# A JSON string literal (brackets inside strings do not nest), or a bracket. The string's body is
# possessive and it ends at its closing quote or at the end of the input, so the scan never
# backtracks: linear in the body. (The earlier "string, else nothing" pattern rescanned from every
# quote of an unclosed string: a 64 KB body of escaped quotes took 17 s of one worker's time.)
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "body_too_large"


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in ``raw`` (not validated: json.loads does that)."""
    depth = deepest = 0
    for token in _TOKENS.findall(raw):
        if token.startswith(b'"'):
            continue
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class LimitedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        limit = settings.MEDBOT_MAX_JSON_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise BodyTooLarge(f"The request body is larger than {limit} bytes.")
        depth = settings.MEDBOT_MAX_JSON_DEPTH
        if nesting_depth(raw) > depth:
            raise ParseError(f"JSON parse error - nested deeper than {depth} levels.")
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = raw.decode(encoding)
            return json.loads(text, parse_constant=json.strict_constant if self.strict else None)
        except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
            raise ParseError(f"JSON parse error - {error}") from None
