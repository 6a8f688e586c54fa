"""Dagster code location of the workbench: thin assets over ``workbench`` library functions."""
