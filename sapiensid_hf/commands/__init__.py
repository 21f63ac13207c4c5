"""Implementations of the `sapiensid` subcommands; `sapiensid_hf.cli` parses the arguments and imports one lazily."""
