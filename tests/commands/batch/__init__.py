"""Tests of provision/commands/batch/."""
