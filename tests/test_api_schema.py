"""The OpenAPI schema is served, and schemathesis finds no 5xx and no response breaking it."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from medbot_site.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


def test_the_schema_and_docs_are_served(client):
    schema_response = client.get("/api/schema/")
    assert schema_response.status_code == 200
    assert b"/api/v1/conversations/{id}/messages/" in schema_response.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    # Swagger UI from our own static files (drf-spectacular-sidecar), nothing inline, no CDN.
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "<style" not in html and "<script>" not in html and "cdn." not in html
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()


def test_the_docs_try_it_out_example_asks_a_real_question_without_a_conversation(client):
    """Swagger's "Try it out" fills the request from the first example: no made-up conversation id
    (the default "conversation: 1" wrote "string" into a real conversation)."""
    import yaml

    document = yaml.safe_load(client.get("/api/schema/").content)
    body = document["paths"]["/api/v1/ask"]["post"]["requestBody"]["content"]["application/json"]
    first = next(iter(body["examples"].values()))["value"]
    assert first == {"question": "How can I lower my blood pressure?"}


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_honours_its_schema(case, db, keep_db_connection):
    """Model off, rate limit lifted (conftest): every operation, generated inputs."""
    case.call_and_validate(
        headers={"Accept": "application/json"},
        checks=[
            checks.not_a_server_error,
            checks.status_code_conformance,
            checks.content_type_conformance,
            checks.response_schema_conformance,
            checks.response_headers_conformance,
        ],
    )
