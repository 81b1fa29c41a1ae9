"""Helpers for the end-to-end tests: tokens, a JWKS server, an upstream recorder, Envoy + client."""
