"""The OpenAPI 3.1 description of the local platform API (served at /api/v1/openapi.json).

tests/test_openapi.py holds it to the handlers: every route is documented (and nothing else),
and property-based requests generated from it (valid and invalid) never get a 5xx, a status
the document does not list, or a body its schema does not allow.
"""

from __future__ import annotations

from typing import Any

from blindmatch.protocol import signal_types

_ERR = {"$ref": "#/components/schemas/Error"}
_JOB = {"$ref": "#/components/schemas/Job"}
_CASE = {"$ref": "#/components/schemas/Case"}
HEX32 = "^[0-9a-f]{32}$"
HEX64 = "^[0-9a-fA-F]{64}$"
BANK_NAME = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
CONTENT_REF = "^[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,127}$"
LABEL = "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
PROVENANCES = [
    "survivor-submitted",
    "moderator-confirmed",
    "peer-sourced",
    "protected-source",
    "generator",
]
CASE_STATES = ["queued", "quarantined", "escalated", "actioned", "dismissed", "closed"]


def _resp(desc: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    r: dict[str, Any] = {"description": desc}
    if schema:
        r["content"] = {"application/json": {"schema": schema}}
    return r


def _path_param(name: str, pattern: str, desc: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": desc,
        "schema": {"type": "string", "pattern": pattern},
    }


def _json_body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": _resp("invalid input; nothing was stored", _ERR),
    "401": _resp("missing or wrong bearer token", _ERR),
}
_TOO_LARGE = {"413": _resp("body too large", _ERR)}
_WAIT = {
    "name": "wait",
    "in": "query",
    "schema": {"type": "number", "minimum": 0, "maximum": 120},
    "description": "seconds to wait for every peer's answer (at most 120); without it the"
    " job is returned at once, usually still in progress (202)",
}
_CONTENT_REF_PARAM = {
    "name": "content_ref",
    "in": "query",
    "schema": {"type": "string", "pattern": CONTENT_REF},
    "description": "the platform's own reference for the content: review cases open for what"
    " matched (GET /api/v1/content/{content_ref}/cases), and for a picture the node keeps it"
    " for reviewers (shown blurred)",
}
_NULLABLE_STR = {"type": ["string", "null"]}

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
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
            },
            "Match": {
                "type": "object",
                "required": ["peer", "item", "band", "variant"],
                "properties": {
                    "peer": {"type": "string", "description": "the holder's node id"},
                    "item": {
                        "type": "string",
                        "pattern": "^[0-9a-f]{32}$",
                        "description": "the holder's opaque item reference",
                    },
                    "band": {"type": "integer", "description": "upper bound of the distance band"},
                    "variant": {"type": "string", "description": "which query variant matched"},
                    "categories": {"type": "array", "items": {"type": "string"}},
                    "provenance": {"type": "string"},
                    "signal": {"type": "string"},
                    "kind": {
                        "type": ["string", "null"],
                        "enum": ["copy", "derivative", None],
                        "description": "for a protected source photo: a near-exact copy or an"
                        " edited derivative (specs/derivatives.md 6); null otherwise",
                    },
                    "group": {
                        "type": "string",
                        "description": "opaque reference of the protected source (hex)",
                    },
                    "derivative": {
                        "type": "object",
                        "description": "the evidence: matched_regions, unmatched_regions,"
                        " regions, coverage, whole_image_match",
                    },
                    "generator": {
                        "type": "object",
                        "description": "present when a federation generator confirmed it made"
                        " the picture: {confirmed, nodes}",
                    },
                },
            },
            "Job": {
                "type": "object",
                "required": ["job", "complete", "peers_total", "peers_done", "matches", "peers"],
                "properties": {
                    "job": {"type": "string", "pattern": HEX32},
                    "complete": {"type": "boolean"},
                    "state": {
                        "type": "string",
                        "enum": ["running", "complete", "dead-lettered", "cancelled"],
                        "description": "dead-lettered: a peer's part failed for good (its"
                        " retries ran out, or it can never run); the job ended without it",
                    },
                    "reason": {
                        **_NULLABLE_STR,
                        "description": "why it ended other than complete (each failed peer"
                        " and its last error)",
                    },
                    "peers_total": {"type": "integer", "minimum": 0},
                    "peers_done": {"type": "integer", "minimum": 0},
                    "matches": {"type": "array", "items": {"$ref": "#/components/schemas/Match"}},
                    "tiles_confirmed": {
                        "type": "integer",
                        "description": "tile hashes confirmed (judged into matches, not matches)",
                    },
                    "peers": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["peer", "state"],
                            "properties": {
                                "peer": {"type": "string"},
                                "state": {"type": "string"},
                                "probes": {"type": "integer"},
                                "candidates": {"type": "integer"},
                                "bytes_sent": {"type": "integer"},
                                "bytes_received": {"type": "integer"},
                                "last_error": _NULLABLE_STR,
                                "replica_cursor": {
                                    "type": ["integer", "null"],
                                    "description": "the position of the peer's index feed"
                                    " this part ran against (null until it ran)",
                                },
                            },
                        },
                    },
                },
            },
            "HashQuery": {
                "type": "object",
                "required": ["hash"],
                "additionalProperties": False,
                "properties": {
                    "hash": {"type": "string", "pattern": HEX64},
                    "signal_type": {"type": "string", "enum": ["pdq"]},
                    "float_vector": {
                        "type": "array",
                        "items": {"type": "number"},
                        "minItems": 256,
                        "maxItems": 256,
                    },
                    "variant": {"type": "string", "maxLength": 64},
                },
            },
            "Case": {
                "type": "object",
                "description": "a review case: references only, never a hash",
                "required": ["case", "holder", "item", "band", "variant", "state"],
                "properties": {
                    "case": {"type": "string", "pattern": HEX32},
                    "content_ref": _NULLABLE_STR,
                    "source": _NULLABLE_STR,
                    "holder": {"type": "string", "description": "the node holding the match"},
                    "item": {"type": "string", "pattern": HEX32},
                    "band": {"type": "integer"},
                    "variant": {"type": "string"},
                    "release": {"type": "object"},
                    "kind": {"type": ["string", "null"], "enum": ["copy", "derivative", None]},
                    "state": {"type": "string", "enum": CASE_STATES},
                    "priority": {"type": "integer"},
                    "decided_by": _NULLABLE_STR,
                    "reason": _NULLABLE_STR,
                    "appeal": {
                        "type": ["string", "null"],
                        "enum": ["open", "upheld", "denied", None],
                    },
                    "needs_rereview": {"type": ["boolean", "integer"]},
                },
            },
            "Status": {
                "type": "object",
                "required": [
                    "node",
                    "federation",
                    "roster_serial",
                    "roster_expires_at",
                    "warnings",
                    "peers",
                ],
                "properties": {
                    "node": {"type": "string"},
                    "federation": {"type": "string"},
                    "roster_serial": {"type": "integer"},
                    "roster_expires_at": {"type": "integer", "description": "unix seconds"},
                    "warnings": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "what the operator must act on (a roster about to expire)",
                    },
                    "index_feed_head": {"type": "integer"},
                    "outbox_pending": {"type": "integer"},
                    "outbox_dead": {"type": "integer"},
                    "jobs": {
                        "type": "object",
                        "description": "match jobs by state (running, complete, dead-lettered,"
                        " cancelled)",
                        "additionalProperties": {"type": "integer"},
                    },
                    "peers": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["peer", "roles", "holds_index", "synced_at", "feed_lag"],
                            "properties": {
                                "peer": {"type": "string"},
                                "roles": {"type": "array", "items": {"type": "string"}},
                                "holds_index": {"type": "boolean"},
                                "replica_entries": {"type": "integer"},
                                "replica_cursor": {"type": "integer"},
                                "synced_at": {
                                    "type": ["integer", "null"],
                                    "description": "last complete pull of its index (unix s)",
                                },
                                "feed_lag": {"type": ["integer", "null"]},
                                "incidents": {"type": "integer"},
                            },
                        },
                    },
                },
            },
            "Bank": {
                "type": "object",
                "required": [
                    "name",
                    "provenance",
                    "categories",
                    "distance_threshold",
                    "enabled",
                    "shared",
                    "items",
                ],
                "properties": {
                    "name": {"type": "string", "pattern": BANK_NAME},
                    "provenance": {"type": "string", "enum": PROVENANCES},
                    "categories": {"type": "array", "items": {"type": "string"}},
                    "distance_threshold": {"type": "integer", "minimum": 0, "maximum": 63},
                    "enabled": {"type": "boolean"},
                    "shared": {"type": "boolean"},
                    "items": {
                        "type": "object",
                        "required": ["active", "expired", "withdrawn"],
                        "properties": {
                            "active": {"type": "integer"},
                            "expired": {"type": "integer"},
                            "withdrawn": {"type": "integer"},
                        },
                    },
                },
            },
        },
    },
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
                            }
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
                " and its tiles) or a video (vPDQ: its distinct quality frames, judged by vPDQ's"
                " rule; a video match has signal vpdq and its query/compared-match percentages)"
                " and match it; without content_ref the media is not stored",
                "parameters": [_WAIT, _CONTENT_REF_PARAM],
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
                "summary": "add hashes to a bank (all or nothing); for signal_type vpdq each "
                "entry is a video as ThreatExchange's vpdq signal string (its frame list)",
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
                                        {
                                            "type": "string",
                                            "description": "vpdq: a JSON list of"
                                            " 'hex,quality,timestamp' frames",
                                        },
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
