"""The local HTTP API for the platform: its routes, its OpenAPI document, and a client."""
