"""Tests of provision/commands/seed/."""
