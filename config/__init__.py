"""Node settings: schema, defaults, loading from TOML plus environment."""

from config.settings import ConfigError, Settings, load_settings, parse_size

__all__ = ["ConfigError", "Settings", "load_settings", "parse_size"]
