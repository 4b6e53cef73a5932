"""The relay: what happens between a decoded client request and a provider's answer — authentication,
model resolution, the same-format fast path or translation through the hub, streaming, and the record of
each call. Surfaces and providers meet only here, through their contracts."""
