"""`zvm-provision seed`: apply.py is the one seeding path (scripted, wizard, batch), output.py is `seed --output`."""
