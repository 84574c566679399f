"""`zvm-provision seed`: options.py (SeedOptions, the flags read), run.py (the command, from its options to its
summary), apply.py (the one seeding path: scripted, wizard, batch) and output.py (`seed --output`)."""
