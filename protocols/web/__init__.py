"""The web port: health, and (as they land) the REST dialects and admin API."""
