"""The HTTP API's OpenAPI 3.1 description, generated from the ``ocr.v1`` proto descriptors.

The JSON bodies are the proto3 JSON mapping of the gRPC messages, so the
schemas come from the same descriptors and never drift from ``ocr.proto``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from ocr.v1 import ocr_pb2

_SCALARS = {
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
}
_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string", "description": "gRPC status name, e.g. INVALID_ARGUMENT"},
                       "message": {"type": "string"}},
    }},
}


def message_schema(descriptor: Descriptor) -> dict[str, Any]:
    """JSON Schema of one message's JSON form (proto field names; lowerCamelCase is accepted on input too)."""
    properties: dict[str, Any] = {}
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            schema: dict[str, Any] = {"$ref": f"#/components/schemas/{field.message_type.name}"}
        else:
            schema = dict(_SCALARS[field.type])
        if field.is_repeated:
            schema = {"type": "array", "items": schema}
        properties[field.name] = schema
    return {"type": "object", "additionalProperties": False, "properties": properties}


def _error_responses(*statuses: int) -> dict[str, Any]:
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {str(s): {"description": "refused; see error.code", **ref} for s in statuses}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


@cache
def openapi_spec() -> dict[str, Any]:
    """The whole document served at ``/openapi.json``."""
    schemas = {d.name: message_schema(d) for d in ocr_pb2.DESCRIPTOR.message_types_by_name.values()}
    schemas["Error"] = _ERROR
    form_fields = {
        name: prop for name, prop in schemas["RecognizeRequest"]["properties"].items() if name != "images"
    }
    form_fields["image"] = {"type": "array", "items": {"type": "string", "format": "binary"}}
    recognize = {
        "summary": "Read every image; one result per image, in request order",
        "parameters": [{"name": "X-Request-Timeout", "in": "header", "required": False,
                        "schema": {"type": "number"}, "description": "seconds the caller waits (like a deadline)"}],
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/RecognizeRequest"}},
            "multipart/form-data": {"schema": {"type": "object", "properties": form_fields}},
        }},
        "responses": {"200": _json("RecognizeResponse", "the readings"),
                      **_error_responses(400, 401, 404, 413, 415, 429, 503, 504)},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "ocr.v1 Recognizer (HTTP/JSON)", "version": "1",
                 "description": "The gRPC contract of proto/ocr/v1/ocr.proto as JSON: same fields, limits and codes."},
        "paths": {
            "/v1/recognize": {"post": recognize},
            "/v1/models": {"get": {"summary": "The loaded models",
                                   "responses": {"200": _json("ListModelsResponse", "models"),
                                                 **_error_responses(401)}}},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
            "/readyz": {"get": {"summary": "Readiness (models loaded, not draining)",
                                "responses": {"200": {"description": "SERVING"}, **_error_responses(503)}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}},
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
