"""`python -m harness` is the `cqrs-bench` command."""

from harness.cli.app import main

if __name__ == "__main__":  # not on import
    main()
