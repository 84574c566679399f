"""One module per command (as pipx has): each turns a request into calls on core and guest and returns a
result object. None prompts or renders."""
