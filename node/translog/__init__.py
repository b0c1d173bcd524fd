"""The verifiable log: tables, entries, HTTP face, monitoring of peers' logs, reports."""
