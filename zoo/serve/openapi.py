"""The OpenAPI 3.1 description of ``zoo serve``'s endpoints (served at ``/openapi.json``)."""

from __future__ import annotations

from typing import Any

from zoo.serve import Limits


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    says = {400: "the body is not strict JSON (malformed, nested deeper than 32, a lone surrogate) or the Host "
                 "header is not one this server answers",
            401: "the server needs an API key (Authorization: Bearer KEY)",
            403: "a request from another site's page (its Origin is not named by --cors-origin)",
            404: "no model of that name", 413: "the body is over --max-body-bytes",
            415: "the body is not sent as Content-Type: application/json",
            422: "a field is missing, unknown or of the wrong type or range, an input is empty or over "
                 "--max-input-chars, the request is over --max-work or --max-total-chars, or the model refused an "
                 "input", 503: "more requests are pending than --max-pending"}
    return {str(c): _json(_ref("Error"), says[c]) for c in codes}


def _schemas(names: list[str], limits: Limits) -> dict[str, Any]:
    text_input = {"oneOf": [{"type": "string", "maxLength": limits.max_input_chars},
                            {"type": "array", "items": {"type": "string"}}],
                  "description": "a text, or a list of words (tagging)"}
    return {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        "Health": {"type": "object", "properties": {
            "status": {"const": "ok"}, "models": {"type": "array", "items": {"type": "string"}},
            "pending": {"type": "integer"}, "max_pending": {"type": "integer"}, "uptime_s": {"type": "number"}}},
        "Model": {"type": "object", "description": "what `zoo info FILE` shows, plus the model card", "properties": {
            "name": {"type": "string", "enum": names}, "path": {"type": "string"}, "entry": {"type": "string"},
            "model": {"type": "string"}, "task": {"type": "string"}, "dataset": {"type": "string"},
            "metrics": {"type": "object"}, "reference": {"type": "object"}, "config": {"type": "object"},
            "parameters": {"type": "integer"}, "generates": {"type": "boolean"},
            "options": {"type": "object", "description": "predict options this model takes, with defaults"},
            "card": {"type": ["string", "null"], "description": "README.md beside the artifact"}}},
        "PredictRequest": {"type": "object", "required": ["inputs"], "additionalProperties": True, "properties": {
            "inputs": {"type": "array", "minItems": 1, "maxItems": limits.max_inputs, "items": text_input}},
            "description": "other fields are the model's predict options (see Model.options)"},
        "PredictResponse": {"type": "object", "properties": {
            "model": {"type": "string"},
            "records": {"type": "array", "items": {"type": "object"},
                        "description": "one record per input, in order; its fields depend on the task"}}},
        "GenerateRequest": {"type": "object", "additionalProperties": False, "properties": {
            "prompt": {"type": "string", "default": ""},
            "max_new_tokens": {"type": "integer", "minimum": 0, "maximum": limits.max_new_tokens, "default": 200},
            "temperature": {"type": "number", "minimum": 0, "default": 0.8},
            "top_k": {"type": ["integer", "null"], "minimum": 1}, "seed": {"type": ["integer", "null"]}}},
    }


def schema(names: list[str], limits: Limits, version: str) -> dict[str, Any]:
    name_param = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string", "enum": names}}]
    stream = {"text/event-stream": {"schema": {"type": "string"}}}
    sse = ("server-sent events: `start` {model, prompt, warnings}, one `token` {text} per piece, then `done` "
           "{text, pieces, seconds} or `error` {error}")
    return {
        "openapi": "3.1.0",
        "info": {"title": "zoo serve", "version": version,
                 "description": "Predict with trained zoo models; stream text from language models."},
        "paths": {
            "/health": {"get": {"summary": "Liveness and load", "responses": {"200": _json(_ref("Health"), "ok")}}},
            "/api/models": {"get": {"summary": "The loaded models with their metadata and model cards",
                                    "responses": {"200": _json({"type": "object", "properties": {
                                        "models": {"type": "array", "items": _ref("Model")}}}, "the models")}}},
            "/api/models/{name}": {"get": {"summary": "One loaded model", "parameters": name_param,
                                           "responses": {"200": _json(_ref("Model"), "the model"), **_errors(404)}}},
            "/api/models/{name}/predict": {"post": {
                "summary": "One record per input", "parameters": name_param,
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("PredictRequest")}}},
                "responses": {"200": _json(_ref("PredictResponse"), "the records"),
                              **_errors(400, 401, 403, 404, 413, 415, 422, 503)}}},
            "/api/models/{name}/generate": {"post": {
                "summary": "Stream a language model's continuation of a prompt", "parameters": name_param,
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("GenerateRequest")}}},
                "responses": {"200": {"description": sse, "content": stream},
                              **_errors(400, 401, 403, 404, 413, 415, 422, 503)}}},
            "/health/live": {"get": {"summary": "Liveness: the process answers (no key needed)",
                                     "responses": {"200": _json({"type": "object"}, "live")}}},
            "/health/ready": {"get": {"summary": "Readiness: models loaded and room for a request (no key needed)",
                                      "responses": {"200": _json({"type": "object"}, "ready"),
                                                    "503": _json({"type": "object"}, "full or shutting down")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics of this worker", "responses": {
                "200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": {
                    "type": "string"}}}}}}},
        },
        "components": {"schemas": _schemas(names, limits)},
    }
