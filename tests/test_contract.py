"""The contract scenario, for every implementation."""

from implementations import contract


def test_every_architecture_passes_the_contract(impl):
    contract.run_scenario(impl)
