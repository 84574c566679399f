"""The network, for the one thing the tool fetches: SSH public keys (gh:USER, gl:USER, https URLs). One bounded
HTTPS GET (httpsget) and the key fetch on top of it (forgekeys); what a source means and what a served body
must be is core.credentials.keysources'."""
