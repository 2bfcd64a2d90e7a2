// Placeholder: the command-line tests come from branch sup-cli.
