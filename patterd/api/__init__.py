"""The control API: HTTP/JSON and a WebSocket over a Unix socket, versioned under /v1."""
