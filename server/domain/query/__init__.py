"""The metadata query language: lexing, parsing, type checking, evaluation and planning."""
