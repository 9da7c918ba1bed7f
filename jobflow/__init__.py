"""jobflow."""
