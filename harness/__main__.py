"""`python -m harness` is the `cqrs-bench` command."""

from harness.cli import main

main()
