-- Ostiary schema version 17: reserved for a change on another branch (proposals
-- take 18). Replace this file with that branch's when merging.
SELECT 1;
