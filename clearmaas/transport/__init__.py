"""Upstream HTTP: the pooled client, SSE parsing, and the mapping of network failures to gateway errors."""
