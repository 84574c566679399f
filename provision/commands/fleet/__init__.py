"""The fleet after a roll-out: `inspect` over many images (audit.py) and `keys` (keys.py: revoke, add, rotate),
many disks per appliance launch, `--jobs` launches at a time (chunks.py), over a folder, a list or a batch
report.json (images.py)."""
