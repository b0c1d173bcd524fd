"""The OpenAPI 3.1 description of the local platform API (served at /api/v1/openapi.json)."""

from __future__ import annotations

from typing import Any

_ERR = {"$ref": "#/components/schemas/Error"}
_JOB = {"$ref": "#/components/schemas/Job"}


def _resp(desc: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    r: dict[str, Any] = {"description": desc}
    if schema:
        r["content"] = {"application/json": {"schema": schema}}
    return r


_ERRORS = {
    "400": _resp("invalid input; nothing was stored", _ERR),
    "401": _resp("missing or wrong bearer token", _ERR),
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "blindmatch node: local platform API",
        "version": "1",
        "description": "Submit media or PDQ hashes for private matching against every peer of the "
        "federation, read verdicts, manage banks. Only on the node's local API address.",
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
                "required": ["job", "complete", "matches", "peers"],
                "properties": {
                    "job": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                    "complete": {"type": "boolean"},
                    "peers_total": {"type": "integer"},
                    "peers_done": {"type": "integer"},
                    "matches": {"type": "array", "items": {"$ref": "#/components/schemas/Match"}},
                    "tiles_confirmed": {
                        "type": "integer",
                        "description": "tile hashes confirmed (judged into matches, not matches)",
                    },
                    "peers": {"type": "array", "items": {"type": "object"}},
                },
            },
            "HashQuery": {
                "type": "object",
                "required": ["hash"],
                "additionalProperties": False,
                "properties": {
                    "hash": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
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
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/healthz": {
            "get": {"security": [], "summary": "liveness", "responses": {"200": _resp("alive")}}
        },
        "/metrics": {
            "get": {
                "security": [],
                "summary": "Prometheus metrics",
                "responses": {"200": _resp("text exposition format")},
            }
        },
        "/api/v1/status": {
            "get": {
                "summary": "node, roster and replication status",
                "responses": {"200": _resp("status"), **_ERRORS},
            }
        },
        "/api/v1/match/hashes": {
            "post": {
                "summary": "match PDQ hashes against every peer",
                "parameters": [
                    {
                        "name": "wait",
                        "in": "query",
                        "schema": {"type": "number"},
                        "description": "seconds to wait for completion (max 120)",
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["hashes"],
                                "properties": {
                                    "hashes": {
                                        "type": "array",
                                        "minItems": 1,
                                        "maxItems": 64,
                                        "items": {"$ref": "#/components/schemas/HashQuery"},
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _resp("complete", _JOB),
                    "202": _resp("in progress", _JOB),
                    **_ERRORS,
                },
            }
        },
        "/api/v1/match/media": {
            "post": {
                "summary": "hash an image on this node (all 8 rotations/mirrors, border "
                "removed) and match it; the image is not stored",
                "parameters": [{"name": "wait", "in": "query", "schema": {"type": "number"}}],
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
                    "413": _resp("too large", _ERR),
                    "422": _resp("too flat", _ERR),
                    **_ERRORS,
                },
            }
        },
        "/api/v1/match/{job}": {
            "get": {
                "summary": "a match job's verdicts",
                "parameters": [
                    {
                        "name": "job",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                    }
                ],
                "responses": {
                    "200": _resp("the job", _JOB),
                    "404": _resp("no such job", _ERR),
                    **_ERRORS,
                },
            }
        },
        "/api/v1/banks": {
            "get": {"summary": "list banks", "responses": {"200": _resp("banks"), **_ERRORS}},
            "post": {
                "summary": "create a bank",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["name", "provenance"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "provenance": {
                                        "type": "string",
                                        "enum": [
                                            "survivor-submitted",
                                            "moderator-confirmed",
                                            "peer-sourced",
                                            "protected-source",
                                            "generator",
                                        ],
                                    },
                                    "description": {"type": "string"},
                                    "categories": {"type": "array", "items": {"type": "string"}},
                                    "distance_threshold": {
                                        "type": "integer",
                                        "minimum": 0,
                                        "maximum": 63,
                                    },
                                    "shared": {"type": "boolean"},
                                    "enabled": {"type": "boolean"},
                                },
                            }
                        }
                    },
                },
                "responses": {"201": _resp("created"), "409": _resp("exists", _ERR), **_ERRORS},
            },
        },
        "/api/v1/banks/{bank}/hashes": {
            "post": {
                "summary": "add hashes to a bank (all or nothing)",
                "parameters": [
                    {"name": "bank", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["hashes"],
                                "properties": {
                                    "signal_type": {
                                        "type": "string",
                                        "enum": ["pdq", "vpdq", "sha256"],
                                    },
                                    "hashes": {
                                        "type": "array",
                                        "maxItems": 10000,
                                        "items": {"type": "string"},
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {"201": _resp("added"), "404": _resp("no such bank", _ERR), **_ERRORS},
            }
        },
        "/api/v1/items/{ref}/withdraw": {
            "post": {
                "summary": "withdraw an item: it stops matching here at once and at every peer "
                "after its next sync",
                "parameters": [
                    {
                        "name": "ref",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                    }
                ],
                "responses": {
                    "200": _resp("withdrawn"),
                    "404": _resp("no such item", _ERR),
                    **_ERRORS,
                },
            }
        },
    },
}
