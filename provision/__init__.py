"""zvm-provision: seed a zvm disk image's persist partition before its first boot."""

__version__ = "0.1.0"
