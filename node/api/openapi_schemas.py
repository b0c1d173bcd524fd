"""The shared pieces of the API's OpenAPI document: its component schemas, and the patterns and
helpers its paths reuse (:mod:`.openapi` puts them together)."""

from __future__ import annotations

from typing import Any

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
    "503": _resp("the node's database is unavailable (read-only, full, missing): retry", _ERR),
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


COMPONENTS: dict[str, Any] = {
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
                "context": {
                    "type": "object",
                    "description": "the upload's context as sent (identifier kinds only)",
                },
                "signals": {
                    "type": "object",
                    "description": "what the node computed: recidivism (earlier actioned cases of"
                    " the uploader here), known_elsewhere (specs/uploaders.md) and the signals"
                    " that moved the priority",
                    "properties": {
                        "known_elsewhere": {"type": "boolean"},
                        "recidivism": {"type": "integer"},
                        "fired": {"type": "array", "items": {"type": "string"}},
                    },
                },
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
                "process": {
                    "type": "object",
                    "description": "this process among the node's processes on one database:"
                    " its instance id, and whether it leads (publishes, pulls peers' feeds, signs"
                    " log heads); README: Running several processes",
                    "properties": {
                        "instance": {"type": "string"},
                        "leader": {"type": "boolean"},
                    },
                },
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
                            "replica_position": {
                                "type": "integer",
                                "description": "the feed position this process's in-memory"
                                " replica reflects (each of a node's processes follows"
                                " replica_cursor, the shared one)",
                            },
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
}

_UPLOADER = {
    "type": "object",
    "description": "who uploaded it, pseudonymously; stored with the cases, never sent to a peer",
    "additionalProperties": False,
    "properties": {
        "ref": {
            "type": "string",
            "pattern": "^[A-Za-z0-9._:@/+=-]{1,128}$",
            "description": "the platform's own opaque account reference (never an email)",
        },
        "identifiers": {
            "type": "array",
            "maxItems": 4,
            "description": "digests of the account's emails and phone numbers for repeat-uploader"
            " signals (specs/uploaders.md 3): computed by the client, used only blinded",
            "items": {
                "type": "object",
                "required": ["kind", "digest"],
                "additionalProperties": False,
                "properties": {
                    "kind": {"type": "string", "enum": ["email", "phone"]},
                    "digest": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                },
            },
        },
    },
}
_CONTEXT = {
    "type": "object",
    "description": "the upload's context: moves review priority, never acts on its own; a"
    " self-upload is never acted on automatically",
    "additionalProperties": False,
    "properties": {
        "account_age_days": {"type": "integer", "minimum": 0, "maximum": 36500},
        "strikes": {"type": "integer", "minimum": 0, "maximum": 100000},
        "open_reports": {"type": "integer", "minimum": 0, "maximum": 100000},
        "self_upload": {"type": "boolean"},
        "surface": {
            "type": "string",
            "enum": ["public-post", "private-message", "profile-picture"],
        },
    },
}
_UPLOAD_HEADER = {
    "name": "Blindmatch-Upload",
    "in": "header",
    "schema": {"type": "string", "maxLength": 4096},
    "description": "JSON {uploader, context} (as in POST /api/v1/match/hashes), for media"
    " uploads whose body is the picture; needs content_ref",
}
