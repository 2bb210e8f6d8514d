-- Ostiary schema version 19: an HTTP upstream may take each caller's
-- identity-provider token exchanged for one issued to it (RFC 8693). Its
-- audience, Ostiary's client id there and the vault reference of that
-- client's secret (never a value), as JSON; empty when not set.

ALTER TABLE upstreams ADD COLUMN token_exchange TEXT NOT NULL DEFAULT '';
