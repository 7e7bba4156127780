"""The contract scenario, for every implementation."""

from implementations import contract


def test_crud_passes_the_contract(crud):
    contract.run_scenario(crud)


def test_cqrs_logical_passes_the_contract(cqrs_logical):
    contract.run_scenario(cqrs_logical)


def test_cqrs_physical_passes_the_contract(cqrs_physical):
    contract.run_scenario(cqrs_physical)
