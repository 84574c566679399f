"""Tests of provision/commands/fleet/."""
