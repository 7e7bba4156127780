"""The contract scenario, for every implementation."""

from implementations import contract


def test_crud_passes_the_contract(crud):
    contract.run_scenario(crud)
