"""Implementations of the `sapiensid` subcommands; `sapiensid_cli` parses the arguments and imports one lazily."""
