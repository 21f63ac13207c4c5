"""`python -m sapiensid_cli ...` (and `accelerate launch -m sapiensid_cli ...`): the `sapiensid` command."""

from sapiensid_cli import main

raise SystemExit(main())
