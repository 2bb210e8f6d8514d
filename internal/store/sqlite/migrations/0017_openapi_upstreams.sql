-- Ostiary schema version 17: HTTP APIs described by an OpenAPI document,
-- whose operations are tools. The document's source (a URL fetched at
-- each sync) or the document itself, the operations selected and the
-- credential's configuration (names of vault secrets, never values), as
-- JSON. Such an upstream is stored with kind 'http' (it is reached over
-- HTTP, at its base URL in url) and is an OpenAPI upstream when this
-- column is not empty: the kind's CHECK constraint cannot be widened
-- without rebuilding the table, which would cascade into the catalog.

ALTER TABLE upstreams ADD COLUMN openapi TEXT NOT NULL DEFAULT '';
