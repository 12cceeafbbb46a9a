"""Configuration: one `Settings` object, Celery configuration and logging derived from it."""

from runq.config.settings import Settings, get_settings, load_settings
from runq.errors import ConfigurationError

__all__ = ["ConfigurationError", "Settings", "get_settings", "load_settings"]
