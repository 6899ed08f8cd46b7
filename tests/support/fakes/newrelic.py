"""New Relic on a loopback socket: REST v2 /v2/applications.json and NerdGraph /graphql.

Serves the documented shapes: `applications[]` with health_status and application_summary,
Link-header pagination, {"error": {"title": ...}} with 401/403 for a bad X-Api-Key; NerdGraph
answers NRQL through `actor.account.nrql.results` and reports problems in `errors[]` (with
HTTP 200 for a bad query, as NerdGraph does).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from tests.support.fakes.loopback import FakeServer, Request
from tests.support.paths import PAYLOADS

API_KEY = "NRAK-TESTKEY0123456789ABCDEFGHIJ"
ACCOUNT_ID = 1234567


def payload(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


@dataclass
class FakeNewRelic(FakeServer):
    api_key: str = API_KEY
    account_id: int = ACCOUNT_ID
    applications: list[dict] = field(
        default_factory=lambda: payload("newrelic_applications.json")["applications"]
    )
    page_size: int = 200
    # NRQL text -> results list; anything else is a syntax error
    nrql: dict[str, list[dict]] = field(default_factory=dict)

    def answer(self, request: Request):
        if request.path == "/v2/applications.json" and request.method == "GET":
            return self._applications(request)
        if request.path == "/graphql" and request.method == "POST":
            return self._graphql(request)
        return 404, {}, {"error": {"title": "Resource not found"}}

    def _applications(self, request: Request):
        if request.headers.get("x-api-key") != self.api_key:
            return 401, {}, {"error": {"title": "The API key provided is invalid"}}
        page = int(request.query.get("page", "1"))
        start = (page - 1) * self.page_size
        apps = copy.deepcopy(self.applications[start : start + self.page_size])
        headers = {}
        if start + self.page_size < len(self.applications):
            base = f"{self.url}/v2/applications.json"
            last = (len(self.applications) - 1) // self.page_size + 1
            headers["Link"] = f'<{base}?page={page + 1}>; rel="next", <{base}?page={last}>; rel="last"'
        return 200, headers, {"applications": apps, "links": payload("newrelic_applications.json")["links"]}

    def _graphql(self, request: Request):
        if request.headers.get("api-key") != self.api_key:
            return (
                401,
                {},
                {"errors": [{"message": "Invalid API key", "extensions": {"errorClass": "UNAUTHORIZED"}}]},
            )
        body = request.json()
        variables = body.get("variables") or {}
        query = body.get("query", "")
        if (
            "$accountId: Int!" not in query
            or "$nrql: Nrql!" not in query
            or not isinstance(variables.get("accountId"), int)
        ):
            return (
                200,
                {},
                {"errors": [{"message": "Variable $accountId of required type Int! was not provided."}]},
            )
        if variables["accountId"] != self.account_id:
            return (
                200,
                {},
                {
                    "data": {"actor": {"account": None}},
                    "errors": [{"message": "Account not authorized", "path": ["actor", "account"]}],
                },
            )
        nrql = variables.get("nrql")
        if nrql not in self.nrql:
            return 200, {}, payload("newrelic_nrql_syntax_error.json")
        return 200, {}, {"data": {"actor": {"account": {"nrql": {"results": self.nrql[nrql]}}}}}
