"""Pure rules: schemas and their evolution, record validation, bundle plans, queries; no I/O."""
