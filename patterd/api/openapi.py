"""The OpenAPI 3.1 document for /v1, written out by hand so a test can hold the router to it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from patterd.api import models as m

_MODELS: tuple[type[BaseModel], ...] = (
    m.PlaceCallRequest,
    m.TransferRequest,
    m.DtmfRequest,
    m.CredentialSetRequest,
    m.ErrorBody,
    m.Status,
    m.VersionInfo,
    m.LiveCalls,
    m.PlacedCall,
    m.CallPage,
    m.CallDetail,
    m.DayTotals,
    m.CredentialList,
    m.Reloaded,
    m.Rebuilt,
    m.Ok,
    m.EventFrame,
)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json_response(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


_ERROR_TEXT = {
    400: "malformed request",
    404: "not found",
    409: "call_ended: the call is in the history but no longer live",
    422: "request failed validation",
    502: "the carrier or SDK refused",
    503: "not taking new calls: draining (not_accepting) or max_calls reached (at_capacity)",
    413: "request body over the API's 64 KiB limit",
}
KEYRING_503 = {
    503: "keyring_unavailable: no usable OS keyring; use the environment, [credentials] or"
    " systemd LoadCredential="
}


def _errors(*codes: int, text: dict[int, str] | None = None) -> dict[str, Any]:
    texts = _ERROR_TEXT | (text or {})
    return {str(c): _json_response(m.ErrorBody, texts[c]) for c in codes}


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(model)}}}


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


CALL_ID = _path_param("call_id", "call id")
CRED_NAME = _path_param("name", "credential name, e.g. OPENAI_API_KEY")
DATE_TIME = {"type": "string", "format": "date-time"}


def _paths() -> dict[str, Any]:
    return {
        "/v1/status": {
            "get": {
                "summary": "Daemon status, version and uptime",
                "responses": {"200": _json_response(m.Status, "status")},
            }
        },
        "/v1/version": {
            "get": {
                "summary": "Daemon and API version",
                "responses": {"200": _json_response(m.VersionInfo, "version")},
            }
        },
        "/v1/calls/live": {
            "get": {
                "summary": "Calls in progress",
                "responses": {"200": _json_response(m.LiveCalls, "live calls")},
            }
        },
        "/v1/calls": {
            "get": {
                "summary": "Call history from the store, newest first, with paging",
                "parameters": [
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                        "page size",
                    ),
                    _query(
                        "offset", {"type": "integer", "minimum": 0, "default": 0}, "rows to skip"
                    ),
                    _query(
                        "direction", {"type": "string", "enum": ["inbound", "outbound"]}, "filter"
                    ),
                    _query("status", {"type": "string"}, "filter by final status"),
                    _query("number", {"type": "string"}, "filter by caller or callee"),
                    _query("since", DATE_TIME, "started at or after"),
                    _query("until", DATE_TIME, "started before"),
                ],
                "responses": {"200": _json_response(m.CallPage, "one page"), **_errors(422)},
            },
            "post": {
                "summary": "Place an outbound call",
                "requestBody": _body(m.PlaceCallRequest),
                "responses": {
                    "201": _json_response(m.PlacedCall, "dialling"),
                    **_errors(400, 422, 502, 503),
                },
            },
        },
        "/v1/calls/{call_id}": {
            "get": {
                "summary": "One call with its transcript and turns (live calls too)",
                "parameters": [CALL_ID],
                "responses": {"200": _json_response(m.CallDetail, "the call"), **_errors(404)},
            }
        },
        "/v1/calls/{call_id}/hangup": {
            "post": {
                "summary": "Hang up a live call",
                "parameters": [CALL_ID],
                "responses": {
                    "200": _json_response(m.Ok, "hung up"),
                    **_errors(404, 409, 502),
                },
            }
        },
        "/v1/calls/{call_id}/transfer": {
            "post": {
                "summary": "Transfer a live call to a number or SIP URI",
                "parameters": [CALL_ID],
                "requestBody": _body(m.TransferRequest),
                "responses": {
                    "200": _json_response(m.Ok, "transferring"),
                    **_errors(400, 404, 409, 422, 502),
                },
            }
        },
        "/v1/calls/{call_id}/dtmf": {
            "post": {
                "summary": "Send DTMF digits on a live call",
                "parameters": [CALL_ID],
                "requestBody": _body(m.DtmfRequest),
                "responses": {
                    "200": _json_response(m.Ok, "sent"),
                    **_errors(400, 404, 409, 422, 502),
                },
            }
        },
        "/v1/totals": {
            "get": {
                "summary": "Calls, minutes and cost by day",
                "parameters": [
                    _query("since", DATE_TIME, "from"),
                    _query("until", DATE_TIME, "to"),
                ],
                "responses": {"200": _json_response(m.DayTotals, "totals"), **_errors(422)},
            }
        },
        "/v1/credentials": {
            "get": {
                "summary": "Names of credentials that resolve, and from where (never values)",
                "responses": {"200": _json_response(m.CredentialList, "names")},
            }
        },
        "/v1/credentials/{name}": {
            "put": {
                "summary": "Store a credential in the keyring (write-only)",
                "parameters": [CRED_NAME],
                "requestBody": _body(m.CredentialSetRequest),
                "responses": {
                    "204": {"description": "stored"},
                    **_errors(400, 422, 503, text=KEYRING_503),
                },
            },
            "delete": {
                "summary": "Delete a credential from the keyring",
                "parameters": [CRED_NAME],
                "responses": {
                    "204": {"description": "deleted"},
                    **_errors(400, 404, 503, text=KEYRING_503),
                },
            },
        },
        "/v1/config/reload": {
            "post": {
                "summary": "Re-read and apply the config file (kept unchanged if invalid)",
                "responses": {"200": _json_response(m.Reloaded, "applied"), **_errors(422)},
            }
        },
        "/v1/store/rebuild": {
            "post": {
                "summary": "Rebuild the call index from the JSONL logs",
                "responses": {"200": _json_response(m.Rebuilt, "rebuilt")},
            }
        },
        "/v1/events": {
            "get": {
                "summary": "WebSocket of live events; each text message is an EventFrame",
                "description": (
                    "Upgrade to a WebSocket. since=<pos> replays events after that position "
                    "that are still in memory; a gap frame says how many were missed. "
                    "Positions restart at 1 with the daemon: pass instance=<Status.instance> "
                    "with since. A since ahead of the last position, or from another "
                    "instance, is answered with a reset frame (pos 0, this daemon's "
                    "instance) and a replay from the start of this daemon's log."
                ),
                "parameters": [
                    _query(
                        "since", {"type": "integer", "minimum": 0}, "resume after this position"
                    ),
                    _query("call_id", {"type": "string"}, "only this call's events"),
                    _query(
                        "instance",
                        {"type": "string", "minLength": 1, "maxLength": 64},
                        "the daemon instance that since belongs to (Status.instance)",
                    ),
                ],
                "responses": {
                    "101": {
                        "description": "switching to WebSocket",
                        "content": {"application/json": {"schema": _ref(m.EventFrame)}},
                    },
                    **_errors(400, 422),
                },
            }
        },
        "/v1/metrics": {
            "get": {
                "summary": "Prometheus text exposition",
                "responses": {
                    "200": {
                        "description": "metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/v1/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in _MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            schemas[name] = sub
        schemas[model.__name__] = schema
    return schemas


def openapi_document(version: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "patterd control API",
            "version": version,
            "description": "Served on the daemon's Unix socket only; never on the TCP port.",
        },
        "servers": [{"url": "http://localhost"}],
        "paths": _with_body_limit(_paths()),
        "components": {"schemas": _schemas()},
    }


def _with_body_limit(paths: dict[str, Any]) -> dict[str, Any]:
    """Every operation that takes a body can be refused for its size (aiohttp's
    client_max_size), so each documents the 413 it then answers."""
    for operations in paths.values():
        for operation in operations.values():
            if "requestBody" in operation:
                operation["responses"].update(_errors(413))
    return paths
