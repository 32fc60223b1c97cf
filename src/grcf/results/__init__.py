"""Results layer: summaries over seeds, paired statistics, tables, plots and the HTML report.
Imports training (metrics), data and the base."""
