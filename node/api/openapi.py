"""The OpenAPI 3.1 description of the local platform API (served at /api/v1/openapi.json).

tests/test_openapi.py holds it to the handlers: every route is documented (and nothing else),
and property-based requests generated from it (valid and invalid) never get a 5xx, a status
the document does not list, or a body its schema does not allow.
"""

from __future__ import annotations

from typing import Any

from blindmatch.node import signals
from blindmatch.node.api.openapi_schemas import (
    _CASE,
    _CONTENT_REF_PARAM,
    _CONTEXT,
    _ERR,
    _ERRORS,
    _JOB,
    _TOO_LARGE,
    _UPLOAD_HEADER,
    _UPLOADER,
    _WAIT,
    BANK_NAME,
    COMPONENTS,
    CONTENT_REF,
    HEX32,
    HEX64,
    LABEL,
    PROVENANCES,
    _json_body,
    _path_param,
    _resp,
)
from blindmatch.protocol import signal_types

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "blindmatch node: local platform API",
        "version": "1",
        "description": "Submit media or PDQ hashes for private matching against every peer of the "
        "federation, read verdicts and the review cases they open, decide and appeal cases,"
        " manage banks. Only on the node's local API address. The reviewer console (/console/)"
        " is a separate web application with its own accounts and is not part of this API.",
    },
    "components": COMPONENTS,
    "security": [{"bearer": []}],
    "paths": {
        "/healthz": {
            "get": {
                "security": [],
                "summary": "liveness",
                "responses": {
                    "200": _resp(
                        "alive",
                        {
                            "type": "object",
                            "required": ["ok", "node"],
                            "properties": {"ok": {"const": True}, "node": {"type": "string"}},
                        },
                    )
                },
            }
        },
        "/metrics": {
            "get": {
                "security": [],
                "summary": "Prometheus metrics (text exposition format; the families are"
                " listed in node/metrics.py METRICS)",
                "responses": {
                    "200": {
                        "description": "metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "security": [],
                "summary": "this document",
                "responses": {"200": _resp("the OpenAPI document", {"type": "object"})},
            }
        },
        "/api/v1/status": {
            "get": {
                "summary": "node, roster (expiry, warnings) and replication status",
                "responses": {
                    "200": _resp("status", {"$ref": "#/components/schemas/Status"}),
                    **_ERRORS,
                },
            }
        },
        "/api/v1/match/hashes": {
            "post": {
                "summary": "match PDQ hashes against every peer",
                "parameters": [_WAIT, _CONTENT_REF_PARAM],
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "required": ["hashes"],
                        "additionalProperties": False,
                        "properties": {
                            "hashes": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": 64,
                                "items": {"$ref": "#/components/schemas/HashQuery"},
                            },
                            "uploader": _UPLOADER,
                            "context": _CONTEXT,
                        },
                    }
                ),
                "responses": {
                    "200": _resp("complete", _JOB),
                    "202": _resp("in progress", _JOB),
                    **_TOO_LARGE,
                    **_ERRORS,
                },
            }
        },
        "/api/v1/match/media": {
            "post": {
                "summary": "hash an image on this node (all 8 rotations/mirrors, border removed,"
                " and its tiles)"
                + "".join(f" or {a.media_doc}" for a in signals.ADAPTERS if a.media_doc)
                + " and match it; without content_ref the media is not stored",
                "parameters": [_WAIT, _CONTENT_REF_PARAM, _UPLOAD_HEADER],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        }
                    },
                },
                "responses": {
                    "200": _resp("complete", _JOB),
                    "202": _resp("in progress", _JOB),
                    **_TOO_LARGE,
                    "422": _resp("too flat to hash reliably", _ERR),
                    **_ERRORS,
                },
            }
        },
        "/api/v1/match/{job}": {
            "get": {
                "summary": "a match job's verdicts",
                "parameters": [_path_param("job", HEX32, "the job reference")],
                "responses": {
                    "200": _resp("the job", _JOB),
                    "404": _resp("no such job (or not a job reference)", _ERR),
                    **_ERRORS,
                },
            }
        },
        "/api/v1/match/{job}/cancel": {
            "post": {
                "summary": "cancel a running job: its pending parts are not attempted again",
                "parameters": [_path_param("job", HEX32, "the job reference")],
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"reason": {"type": "string", "maxLength": 500}},
                    },
                    required=False,
                ),
                "responses": {
                    "200": _resp("the job, cancelled", _JOB),
                    "404": _resp("no such job", _ERR),
                    "409": _resp("the job has already ended", _ERR),
                    **_TOO_LARGE,
                    **_ERRORS,
                },
            }
        },
        "/api/v1/match/{job}/retry": {
            "post": {
                "summary": "run a dead-lettered or cancelled job's failed parts again",
                "parameters": [_path_param("job", HEX32, "the job reference")],
                "responses": {
                    "200": _resp("the job, running again", _JOB),
                    "404": _resp("no such job", _ERR),
                    "409": _resp("the job is running or complete", _ERR),
                    **_ERRORS,
                },
            }
        },
        "/api/v1/content/{content_ref}/cases": {
            "get": {
                "summary": "the review cases opened for a content reference",
                "parameters": [_path_param("content_ref", CONTENT_REF, "the platform's ref")],
                "responses": {
                    "200": _resp(
                        "its cases (none: nothing matched, or not yet)",
                        {
                            "type": "object",
                            "required": ["cases"],
                            "properties": {"cases": {"type": "array", "items": _CASE}},
                        },
                    ),
                    "404": _resp("not a content reference a URL path can carry", _ERR),
                    **_ERRORS,
                },
            }
        },
        "/api/v1/cases/{case}/decision": {
            "post": {
                "summary": "decide a case as the platform (or a tool such as HMA through the"
                " adapter): actioned sends the holder a confirm, dismissed a dispute",
                "parameters": [_path_param("case", HEX32, "the case reference")],
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "required": ["outcome"],
                        "additionalProperties": False,
                        "properties": {
                            "outcome": {
                                "type": "string",
                                "enum": ["actioned", "dismissed", "escalated"],
                            },
                            "reason": {"type": "string", "maxLength": 500},
                            "by": {"type": "string", "pattern": "^[a-z0-9_.-]{1,32}$"},
                        },
                    }
                ),
                "responses": {
                    "200": _resp("the decided case", _CASE),
                    "404": _resp("no such case", _ERR),
                    "409": _resp("the case is closed", _ERR),
                    **_TOO_LARGE,
                    **_ERRORS,
                },
            }
        },
        "/api/v1/cases/{case}/appeal": {
            "post": {
                "summary": "the uploader appeals an action: the case goes back to a reviewer",
                "parameters": [_path_param("case", HEX32, "the case reference")],
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"reason": {"type": "string", "maxLength": 2000}},
                    },
                    required=False,
                ),
                "responses": {
                    "200": _resp("the case, its appeal open", _CASE),
                    "404": _resp("no such case", _ERR),
                    "409": _resp("only an action can be appealed", _ERR),
                    **_TOO_LARGE,
                    **_ERRORS,
                },
            }
        },
        "/api/v1/banks": {
            "get": {
                "summary": "list banks",
                "responses": {
                    "200": _resp(
                        "banks",
                        {
                            "type": "object",
                            "required": ["banks"],
                            "properties": {
                                "banks": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Bank"},
                                }
                            },
                        },
                    ),
                    **_ERRORS,
                },
            },
            "post": {
                "summary": "create a bank",
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "required": ["name", "provenance"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "pattern": BANK_NAME},
                            "provenance": {"type": "string", "enum": PROVENANCES},
                            "description": {"type": "string", "maxLength": 2000},
                            "categories": {
                                "type": "array",
                                "maxItems": 32,
                                "items": {"type": "string", "pattern": LABEL},
                            },
                            "distance_threshold": {"type": "integer", "minimum": 0, "maximum": 63},
                            "shared": {"type": "boolean"},
                            "enabled": {"type": "boolean"},
                        },
                    }
                ),
                "responses": {
                    "201": _resp(
                        "created",
                        {
                            "type": "object",
                            "required": ["name"],
                            "properties": {"name": {"type": "string"}},
                        },
                    ),
                    "409": _resp("a bank of that name exists", _ERR),
                    **_TOO_LARGE,
                    **_ERRORS,
                },
            },
        },
        "/api/v1/banks/{bank}/hashes": {
            "post": {
                "summary": "add hashes to a bank (all or nothing)"
                + "".join(
                    f"; for signal_type {a.entry.name} each entry is {a.value_doc}"
                    for a in signals.ADAPTERS
                    if a.holds_parts
                ),
                "parameters": [_path_param("bank", BANK_NAME, "the bank's name")],
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "required": ["hashes"],
                        "additionalProperties": False,
                        "properties": {
                            "signal_type": {
                                "type": "string",
                                "enum": list(signal_types.bank_signal_names()),
                            },
                            "hashes": {
                                "type": "array",
                                "maxItems": 10000,
                                "items": {
                                    "anyOf": [
                                        {"type": "string", "pattern": HEX64},
                                        *(
                                            {
                                                "type": "string",
                                                "description": f"{a.entry.name}:"
                                                f" {a.value_schema_doc}",
                                            }
                                            for a in signals.ADAPTERS
                                            if a.holds_parts
                                        ),
                                    ]
                                },
                            },
                        },
                    }
                ),
                "responses": {
                    "201": _resp(
                        "added",
                        {
                            "type": "object",
                            "required": ["added", "already_present"],
                            "properties": {
                                "added": {"type": "integer"},
                                "already_present": {"type": "integer"},
                            },
                        },
                    ),
                    "404": _resp("no such bank", _ERR),
                    **_TOO_LARGE,
                    **_ERRORS,
                },
            }
        },
        "/api/v1/items/{ref}/withdraw": {
            "post": {
                "summary": "withdraw an item: it stops matching here at once and at every peer "
                "after its next sync",
                "parameters": [_path_param("ref", HEX32, "the item reference")],
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"reason": {"type": "string", "maxLength": 500}},
                    },
                    required=False,
                ),
                "responses": {
                    "200": _resp(
                        "withdrawn",
                        {
                            "type": "object",
                            "required": ["item", "withdrawn_at"],
                            "properties": {
                                "item": {"type": "string", "pattern": HEX32},
                                "withdrawn_at": {"type": "integer"},
                            },
                        },
                    ),
                    "404": _resp("no such item", _ERR),
                    "409": _resp("already withdrawn", _ERR),
                    **_TOO_LARGE,
                    **_ERRORS,
                },
            }
        },
    },
}
