"""wxemu models."""
