-- Ostiary schema version 17: reserved for a change on another branch (alerts and
-- reviews take 20). Replace this file with that branch's when merging.
SELECT 1;
