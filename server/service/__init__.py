"""Use cases: one transaction per request, joining the domain rules and the storage."""
