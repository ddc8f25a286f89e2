"""The metareg server: a gRPC registry of versioned metadata schemas and their records."""
