"""Writing results: line records, page records and drawings, batch output files."""
