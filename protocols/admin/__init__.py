"""The admin API (``/admin/v1``) used by the operator console, and the request trace."""
