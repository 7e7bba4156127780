"""`python -m harness` is the `cqrs-bench` command."""

from harness.cli.app import main

main()
