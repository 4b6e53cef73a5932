"""The HTTP application: the route table, error rendering, the response types and the server."""
