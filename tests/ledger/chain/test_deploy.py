"""Deployment discovery: where CREATE puts a contract, checked against real deployments."""

from __future__ import annotations

import pytest

from ledger.chain import ChainClient, contract_address, load_artifact
from ledger.chain.deploy import find_deployment
from ledger.errors import InputError
from tests.ledger.chain.testonly import ChainEnv, register

# The sender and addresses of the worked example that write-ups of CREATE quote
# (keccak256(rlp([sender, nonce]))[12:]); nonce 0 encodes as the empty string.
SENDER = "0x6ac7ea33f8831ea9dcc53393aaa88b25a785dbf0"
KNOWN = [
    (0, "0xcd234a471b72ba2f1ccf0a70fcaba648a5eecd8d"),
    (1, "0x343c43a37d37dff08ae8c4a11544c718abb4fcf8"),
]


@pytest.mark.parametrize(("nonce", "expected"), KNOWN)
def test_contract_address_known_answers(nonce: int, expected: str) -> None:
    assert contract_address(SENDER, nonce) == expected
    assert contract_address(SENDER.upper().replace("0X", "0x"), nonce) == expected


def test_contract_address_refuses_what_is_no_sender_or_nonce() -> None:
    with pytest.raises(InputError, match="not an address"):
        contract_address("0x1234", 0)
    with pytest.raises(ValueError, match="never negative"):
        contract_address(SENDER, -1)


def test_contract_address_is_where_the_chain_deploys(env: ChainEnv) -> None:
    operator = env.new_account()  # funded without spending a nonce of its own
    first, deployment = ChainClient.deploy(env.w3, private_key=operator.key)
    assert deployment.contract == first.address == contract_address(operator.address, 0)

    register(first, "acme", "Acme", ["supplier"])
    register(first, "beta", "Beta", ["auditor"])
    nonce = env.w3.eth.get_transaction_count(operator.address)
    assert nonce == 3
    second, later = ChainClient.deploy(env.w3, private_key=operator.key)
    assert later.contract == second.address == contract_address(operator.address, nonce)
    assert later.contract != deployment.contract

    # Discovery walks the deployer's recent CREATE addresses, newest first.
    found = find_deployment(env.w3, operator.address, load_artifact())
    assert found == later
