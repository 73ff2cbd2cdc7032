"""wxemu pipeline."""
