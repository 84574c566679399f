"""The person's machine: files read from it safely (reading), written to it privately (writing), its ~/.ssh
(sshdir) and who is running the tool (operator)."""
