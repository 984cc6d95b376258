"""Analyses of dreams: event detectors, worlds/events statistics (SPEC §6-§7)."""
