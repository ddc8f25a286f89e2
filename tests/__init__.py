"""metareg test suite."""
