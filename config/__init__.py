"""Configuration: one `Settings` object, Celery configuration and logging derived from it."""

from config.settings import ConfigError, Settings, get_settings, load_settings

__all__ = ["ConfigError", "Settings", "get_settings", "load_settings"]
