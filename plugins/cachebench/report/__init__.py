"""Per-point export (metrics, figures, summary row) and the campaign report."""
