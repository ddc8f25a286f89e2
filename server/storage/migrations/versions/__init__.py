"""Migration scripts, applied in order by `metareg db upgrade`."""
