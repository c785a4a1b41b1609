"""Tortoise migrations of the metadata schema (generated, then reviewed)."""
