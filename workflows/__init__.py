"""wxemu workflows."""
