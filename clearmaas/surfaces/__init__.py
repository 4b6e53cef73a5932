"""Inbound protocols: one package per wire protocol a client can speak. A surface never imports a provider."""
