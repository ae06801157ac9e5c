"""keyresponse: incident response for a leaked API key, as one command."""

__version__ = "0.1.0"
