"""The operator console (Textual): a client of a node's admin API."""
