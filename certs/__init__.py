"""TLS material for the webhook: `authority` (a small CA and serving certificates, written
atomically, keys 0600) and `rotation` (a server context that follows certificate rotation
without a restart)."""
