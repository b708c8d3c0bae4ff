"""The OpenAPI document is complete: schemathesis finds no 5xx and no response that breaks the schema."""

from __future__ import annotations

import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sqlgate.api import metrics
from tests.api.conftest import bearer

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 30


def test_every_body_and_error_has_a_schema(gateway, client):
    """Every operation documents its bodies and the problem JSON of its errors."""
    document = client.get("/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "application/problem+json" in responses["403"]["content"], (method, path)
            ok = next(code for code in responses if code.startswith("2"))
            assert responses[ok].get("content") or method == "delete", (method, path)
            assert operation.get("description") or operation.get("summary"), (method, path)
    assert "Problem" in document["components"]["schemas"]


def test_schemathesis_finds_no_server_errors_or_schema_violations(gateway):
    """Generated requests with a valid token get no 5xx and only documented, schema-conforming answers."""
    token = gateway.token("sam", ("engineers", "sqlgate-admins", "auditors", "dba"), ttl="30m")
    schema = schemathesis.openapi.from_url(f"{gateway.http_url}/openapi.json")
    failures: list[str] = []
    before, operations = _requests_served(), 0
    for result in schema.get_all_operations():
        operations += 1
        operation = result.ok()
        try:
            _exercise(operation, token)
        except Exception as exc:
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    assert _requests_served() - before >= operations * 5, "schemathesis sent too few requests to mean anything"


def _exercise(operation, token):
    """Run generated cases of one operation through every check."""

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy())
    def exercise(case):
        case.call_and_validate(headers=bearer(token), checks=CHECKS, timeout=30)

    exercise()


def _requests_served() -> float:
    return sum(
        sample.value
        for family in metrics.REQUESTS.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )
