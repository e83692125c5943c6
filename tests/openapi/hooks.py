"""Schemathesis hooks for the e2e test `openapi`.

A component upload (`application/wasm`) is raw bytes: send it the way
schemathesis sends `application/octet-stream`.
"""

import schemathesis

schemathesis.serializer.alias("application/wasm", "application/octet-stream")
