"""The OpenAPI document against the handlers, over real HTTP (schemathesis-style, with
hypothesis): every route is documented and nothing else is; requests generated from the
document's schemas -- and deliberately broken ones -- never get a 5xx, a status the document
does not list for the operation, or a JSON body its schema does not allow; an undocumented
method gets 405 with an Allow header naming exactly the documented methods."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from survivor_harness import LoopThread

from blindmatch.node.api.http import build_api
from blindmatch.node.api.openapi import OPENAPI
from blindmatch.node.devtools.localfed import LocalFederation, NodeSpec

jsonschema = pytest.importorskip("jsonschema")
requests = pytest.importorskip("requests")

# per operation; BLINDMATCH_API_EXAMPLES=500 for a longer, randomised hunt
EXAMPLES = int(os.environ.get("BLINDMATCH_API_EXAMPLES", "25"))
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
NOT_API = ("/console",)  # the reviewer console: a web application with its own accounts


def inline(schema: Any) -> Any:
    """The schema with every ``#/components/schemas/X`` reference replaced by X."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if ref is not None:
            return inline(OPENAPI["components"]["schemas"][ref.rsplit("/", 1)[1]])
        return {k: inline(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [inline(v) for v in schema]
    return schema


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid for the subset of JSON Schema this document uses (checked by the
    validation in ``_validate`` / jsonschema on the way back, not assumed)."""
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([from_schema({**schema, "type": k}) for k in kind])
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False,
                         allow_infinity=False)  # fmt: skip
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        if schema.get("format") == "binary":
            return st.binary(max_size=2048)
        return st.text(max_size=schema.get("maxLength", 40))
    if kind == "array":
        low = schema.get("minItems", 0)
        return st.lists(from_schema(schema.get("items", {})), min_size=low,
                        max_size=max(low, min(schema.get("maxItems", 4), 4)))  # fmt: skip
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: from_schema(v) for k, v in props.items() if k in required},
            optional={k: from_schema(v) for k, v in props.items() if k not in required},
        )
    return st.none() | st.booleans() | st.integers() | st.text(max_size=10)


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in OPENAPI["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def test_every_route_is_documented_and_nothing_else() -> None:
    app = build_api(_FakeNode(), None, "token", console=False)  # type: ignore[arg-type]
    served = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if path and not path.startswith(NOT_API):
            served.add((path, route.method.lower()))
    documented = {(path, method) for path, method, _ in operations()}
    assert served == documented, (served - documented, documented - served)
    for path, method, op in operations():
        assert op.get("summary") and ({"200", "201"} & set(op["responses"])), (path, method)
        for name in re.findall(r"{(\w+)}", path):
            assert any(p["name"] == name and p["in"] == "path" for p in op["parameters"]), path


class _FakeNode:
    """Only what build_api touches while registering routes (no handler runs)."""

    node_id = "x"


# --- against a running node ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    loop = LoopThread()
    home: Path = tmp_path_factory.mktemp("openapi")

    async def start() -> LocalFederation:
        return await LocalFederation(home, background=True, sync_interval_s=0.5).start(
            [NodeSpec("hub", ("hub",)), NodeSpec("platform", holds_index=False)]
        )

    fed = loop.run(start())
    platform = fed["platform"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {platform.api_token}"
    base = platform.api_url
    # Something for the generated references to find now and then.
    created = session.post(base + "/api/v1/banks", json={"name": "b1", "provenance":
                           "moderator-confirmed"}, timeout=30)  # fmt: skip
    assert created.status_code == 201, created.text
    yield base, session
    loop.run(fed.stop())
    loop.close()


def _validate(op: dict[str, Any], response: requests.Response, what: str) -> None:
    status = str(response.status_code)
    assert response.status_code < 500, f"{what}: {status} {response.text[:300]}"
    documented = op["responses"]
    assert status in documented, f"{what}: undocumented status {status}: {response.text[:300]}"
    content = documented[status].get("content", {})
    if "application/json" in content:
        body = response.json()
        jsonschema.validate(body, inline(content["application/json"]["schema"]))


def _strategy_for(path: str, method: str, op: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Requests for one operation: mostly valid by its schemas, some with one part broken."""
    params = op.get("parameters", [])
    path_params = {
        p["name"]: st.one_of(
            from_schema(p["schema"]),
            st.text(min_size=1, max_size=40).filter(lambda s: "/" not in s),
        )
        for p in params
        if p["in"] == "path"
    }
    query = {}
    for p in params:
        if p["in"] != "query":
            continue
        schema = dict(p["schema"])
        if p["name"] == "wait":
            schema["maximum"] = 2  # a valid wait blocks; keep the run short
        query[p["name"]] = st.one_of(
            st.none(),
            from_schema(schema).map(str),
            st.text(max_size=20),  # broken: anything at all
        )
    body: st.SearchStrategy[Any] = st.none()
    request_body = op.get("requestBody")
    if request_body:
        content = request_body["content"]
        if "application/json" in content:
            valid = from_schema(inline(content["application/json"]["schema"]))
            broken = st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                lambda c: (
                    st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3)
                ),
                max_leaves=8,
            )
            body = st.one_of(valid.map(lambda b: ("json", b)), broken.map(lambda b: ("json", b)),
                             st.binary(max_size=64).map(lambda b: ("raw", b)))  # fmt: skip
        else:
            body = st.binary(max_size=2048).map(lambda b: ("raw", b))
    return st.fixed_dictionaries(
        {
            "path": st.fixed_dictionaries(path_params),
            "query": st.fixed_dictionaries(query),
            "body": body,
        }
    )


def _send(base: str, session: Any, path: str, method: str, case: dict[str, Any]) -> Any:
    url = path
    for name, value in case["path"].items():
        url = url.replace("{" + name + "}", quote(str(value), safe=""))
    query = {k: v for k, v in case["query"].items() if v is not None}
    kwargs: dict[str, Any] = {"params": query, "timeout": 60}
    if case["body"] is not None:
        kind, payload = case["body"]
        if kind == "json":
            kwargs["data"] = json.dumps(payload)
            kwargs["headers"] = {"Content-Type": "application/json"}
        else:
            kwargs["data"] = payload
            kwargs["headers"] = {"Content-Type": "application/octet-stream"}
    return session.request(method.upper(), base + url, **kwargs)


@pytest.mark.parametrize(
    ("path", "method"), [(p, m) for p, m, _ in operations()], ids=lambda x: str(x)
)
def test_generated_requests_meet_the_document(api, path: str, method: str) -> None:  # type: ignore[no-untyped-def]
    base, session = api
    op = OPENAPI["paths"][path][method]
    seen: list[int] = []

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES == 25,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(_strategy_for(path, method, op))
    def check(case: dict[str, Any]) -> None:
        response = _send(base, session, path, method, copy.deepcopy(case))
        seen.append(response.status_code)
        _validate(op, response, f"{method.upper()} {path} {case!r}"[:400])

    check()
    # Not vacuous: valid requests were accepted and broken ones refused.
    if (path, method) in REACHABLE:
        assert any(code < 300 for code in seen), seen
    if op.get("parameters") or op.get("requestBody"):
        assert any(400 <= code < 500 for code in seen), seen


# Operations whose generated requests can succeed (the others need a reference that exists).
REACHABLE = {
    ("/healthz", "get"),
    ("/metrics", "get"),
    ("/api/v1/openapi.json", "get"),
    ("/api/v1/status", "get"),
    ("/api/v1/match/hashes", "post"),
    ("/api/v1/content/{content_ref}/cases", "get"),
    ("/api/v1/banks", "get"),
    ("/api/v1/banks", "post"),
}


def test_undocumented_methods_get_405_naming_the_documented_ones(api) -> None:  # type: ignore[no-untyped-def]
    base, session = api
    for path, item in OPENAPI["paths"].items():
        documented = {m.upper() for m in item if m in METHODS}
        concrete = re.sub(r"{\w+}", "0" * 32, path).replace("0" * 32 + "/cases", "ref/cases")
        for method in {"GET", "POST", "PUT", "DELETE", "PATCH"} - documented:
            response = session.request(method, base + concrete, timeout=30)
            assert response.status_code == 405, (method, path, response.status_code)
            allowed = {m.strip() for m in response.headers["Allow"].split(",")}
            assert allowed == documented, (path, allowed, documented)


def test_unauthenticated_requests_get_401(api) -> None:  # type: ignore[no-untyped-def]
    base, _ = api
    for path, method, op in operations():
        if op.get("security") == []:
            continue
        concrete = re.sub(r"{\w+}", "0" * 32, path)
        response = requests.request(method.upper(), base + concrete, timeout=30)
        assert response.status_code == 401
        jsonschema.validate(response.json(), inline(op["responses"]["401"]["content"]
                                                    ["application/json"]["schema"]))  # fmt: skip
