"""Studies: one module per question, each writing report.json, report.md and figures to a folder."""
