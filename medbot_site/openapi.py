"""Schema post-processing: every operation documents the errors it can really return."""

from __future__ import annotations

from typing import Any

ERROR = {
    "description": "An error. `detail` says why; validation errors map each field to its messages.",
    "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}},
}
COMMON = {
    "400": "Invalid input",
    "403": "CSRF check failed or not allowed",
    "404": "Not found, or not yours",
    "415": "The body must be JSON",
    "503": "Database unavailable",
}
RATE_LIMITED_PATHS = ("/api/v1/ask", "/ask", "/api/v1/conversations/{id}/messages/")


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code, description in COMMON.items():
                responses.setdefault(code, {**ERROR, "description": description})
            if method == "post" and path in RATE_LIMITED_PATHS:
                responses.setdefault(
                    "429",
                    {
                        **ERROR,
                        "description": "Too many questions",
                        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"}},
                    },
                )
    return result
