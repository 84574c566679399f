"""Pure data and decisions: the persist contract, what the person asks for, the plan, the image's state as
data, credentials and the manifest model. No I/O; imports nothing of ours but errors and secret."""
