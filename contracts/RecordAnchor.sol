// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title RecordAnchor
/// @notice Benchmark baseline only: anchors every record with its own transaction, the way a
/// ledger without Merkle checkpoints would. bench/chain.py compares ProvenanceLedger's
/// checkpoints against it; nothing in forgeproof uses it otherwise.
contract RecordAnchor {
    address public immutable operator;
    mapping(bytes32 leafHash => uint64 blockNumber) public anchoredAt;

    event Anchored(bytes32 indexed leafHash, uint64 blockNumber);

    error NotOperator(address sender);
    error AlreadyAnchored(bytes32 leafHash, uint64 blockNumber);

    constructor() {
        operator = msg.sender;
    }

    function anchor(bytes32 leafHash) external {
        if (msg.sender != operator) revert NotOperator(msg.sender);
        uint64 previous = anchoredAt[leafHash];
        if (previous != 0) revert AlreadyAnchored(leafHash, previous);
        anchoredAt[leafHash] = uint64(block.number);
        emit Anchored(leafHash, uint64(block.number));
    }
}
