"""wxemu data_catalog."""
