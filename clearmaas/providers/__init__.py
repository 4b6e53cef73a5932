"""Upstream adapters: one module (or package) per provider protocol, and the registry that builds them
from configuration. A provider never imports a surface."""
