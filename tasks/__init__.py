"""Task plugins. Each subpackage registers one task in ``centerpoint_suite.registry.TASKS``."""
