// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title ProvenanceLedger
/// @notice Anchors an append-only RFC 6962 / RFC 9162 Merkle log (SHA-256) and keeps the
/// registry of the organisations that sign its records.
///
/// Checkpoints: the operator publishes (size, root) together with a consistency proof from the
/// previous checkpoint; the proof is checked here, so a root that does not extend the anchored
/// history (a rewritten or forked log) can never be stored, whoever sends it. Every checkpoint
/// is kept, and `verifyInclusion` checks a receipt's inclusion proof against chain state alone.
///
/// Registry: participants (organisations) with role bit flags, and signing keys (addresses)
/// per participant with a validity window in blocks: valid from `validFrom` (inclusive) until
/// `revokedFrom` (exclusive, 0 = not revoked). An address is bound to one participant forever,
/// so "which participant signed at block B" never changes its answer except by revocation.
///
/// Authority: an "operator" is any address that is a currently valid key of a participant with
/// ROLE_OPERATOR. Operators publish checkpoints, register participants, set roles and manage
/// every key; a participant manages its own keys with one of its currently valid keys. The
/// deployer becomes the first operator. There is no other owner or upgrade path: an operator
/// that revokes its own last key locks the registry for good.
///
/// Every state change emits an event; every refusal is a custom error (nothing fails silently).
contract ProvenanceLedger {
    // ---------------------------------------------------------------- roles (bit flags)
    uint32 public constant ROLE_OPERATOR = 1 << 0;
    uint32 public constant ROLE_SUPPLIER = 1 << 1;
    uint32 public constant ROLE_MANUFACTURER = 1 << 2;
    uint32 public constant ROLE_AUDITOR = 1 << 3;
    uint32 public constant ROLE_MAINTAINER = 1 << 4;
    uint32 public constant ROLE_MODEL_PUBLISHER = 1 << 5;
    uint32 public constant ALL_ROLES = (1 << 6) - 1;

    // ---------------------------------------------------------------- storage
    struct Participant {
        uint32 roles;
        uint64 registeredAt; // block number
        string id;
        string name;
    }

    struct Key {
        uint64 participant; // index into _participants + 1; 0 = unknown key
        uint64 validFrom; // first block at which the key is valid
        uint64 revokedFrom; // first block at which it is not valid any more; 0 = not revoked
    }

    // One slot per checkpoint besides its root: the whole history stays readable on chain.
    struct CheckpointMeta {
        uint64 previousSize; // 0 for the first checkpoint
        uint64 blockNumber;
        uint64 timestamp;
        uint64 index; // 0-based position in the sequence of checkpoints
    }

    // A mapping rather than an array: the operator check on every checkpoint then skips the
    // array's length (bounds check), one cold storage read.
    mapping(uint256 index => Participant) private _participants;
    uint256 private _participantCount;
    mapping(bytes32 idHash => uint256 indexPlusOne) private _participantIndex;
    mapping(uint256 participantIndex => address[] keys) private _keysOf;
    mapping(address key => Key) private _keys;

    mapping(uint64 size => bytes32 root) private _roots;
    mapping(uint64 size => CheckpointMeta) private _meta;
    uint64 private _latestSize;
    uint64 private _checkpointCount;

    // ---------------------------------------------------------------- events
    event ParticipantRegistered(bytes32 indexed idHash, string id, string name, uint32 roles);
    event RolesChanged(bytes32 indexed idHash, string id, uint32 previousRoles, uint32 roles);
    event KeyAdded(bytes32 indexed idHash, address indexed key, uint64 validFrom);
    event KeyRevoked(bytes32 indexed idHash, address indexed key, uint64 revokedFrom);
    event CheckpointPublished(uint64 indexed size, bytes32 root, uint64 previousSize, uint64 index);

    // ---------------------------------------------------------------- errors
    error NotOperator(address sender);
    error NotAuthorized(address sender, string participantId);
    error EmptyParticipantId();
    error ParticipantExists(string id);
    error UnknownParticipant(string id);
    error ParticipantIndexOutOfRange(uint256 index, uint256 count);
    error NoRoles();
    error UnknownRoles(uint32 roles);
    error ZeroAddress();
    error KeyExists(address key, string participantId);
    error UnknownKey(address key);
    error KeyAlreadyRevoked(address key, uint64 revokedFrom);
    error EffectiveBlockInPast(uint64 effectiveBlock, uint64 currentBlock);
    error EffectiveBlockBeforeValidFrom(uint64 effectiveBlock, uint64 validFrom);
    error ZeroRoot();
    error SizeNotIncreasing(uint64 latestSize, uint64 size);
    error UnexpectedProof(uint256 length);
    error EmptyTreeProof();
    error SizesOutOfOrder(uint64 size1, uint64 size2);
    error ProofLength(uint256 length);
    error OldRootMismatch(bytes32 computed, bytes32 expected);
    error NewRootMismatch(bytes32 computed, bytes32 expected);
    error IndexOutOfRange(uint256 index, uint64 size);
    error InclusionRootMismatch(bytes32 computed, bytes32 expected);
    error UnknownCheckpoint(uint64 size);
    error NoCheckpoint();
    error Sha256Failed();

    // ---------------------------------------------------------------- construction
    /// @param operatorId  id of the operator organisation (for example "operator").
    /// @param operatorName  its display name.
    constructor(string memory operatorId, string memory operatorName) {
        uint256 index = _register(operatorId, operatorName, ROLE_OPERATOR);
        _addKey(index, msg.sender, uint64(block.number));
    }

    modifier onlyOperator() {
        if (!_isOperator(msg.sender)) revert NotOperator(msg.sender);
        _;
    }

    // ---------------------------------------------------------------- registry: writes
    /// Register an organisation. Operator only; ids are unique and never reused.
    function registerParticipant(string calldata id, string calldata name, uint32 roles)
        external
        onlyOperator
    {
        _register(id, name, roles);
    }

    /// Replace a participant's roles (0 suspends it without forgetting its keys). Operator only.
    function setRoles(string calldata id, uint32 roles) external onlyOperator {
        if (roles & ~ALL_ROLES != 0) revert UnknownRoles(roles);
        uint256 index = _indexOf(id);
        Participant storage p = _participants[index];
        uint32 previous = p.roles;
        p.roles = roles;
        emit RolesChanged(keccak256(bytes(id)), id, previous, roles);
    }

    /// Bind a new signing key to a participant, valid from block `validFrom` on (0: the block of
    /// this transaction; never an earlier one, a key cannot be made valid retroactively).
    /// By an operator or by one of the participant's currently valid keys.
    function addKey(string calldata participantId, address key, uint64 validFrom) external {
        uint256 index = _indexOf(participantId);
        _requireManager(index);
        _addKey(index, key, _notPast(validFrom));
    }

    /// Revoke a key from block `revokedFrom` on (0: the block of this transaction). The block may
    /// lie in the past, to disown what a compromised key signed since then, but not before the
    /// key became valid. By an operator or by one of the owning participant's currently valid
    /// keys (a key may revoke itself).
    function revokeKey(address key, uint64 revokedFrom) external {
        uint256 index = _keyOwner(key);
        _requireManager(index);
        _revokeKey(index, key, revokedFrom == 0 ? uint64(block.number) : revokedFrom);
    }

    /// Replace `oldKey` by `newKey` at block `effectiveBlock` (0: the block of this transaction;
    /// never an earlier one): the new key is valid from it, the old one no longer.
    /// Same authority as `addKey`.
    function rotateKey(address oldKey, address newKey, uint64 effectiveBlock) external {
        uint256 index = _keyOwner(oldKey);
        _requireManager(index);
        uint64 effective = _notPast(effectiveBlock);
        _addKey(index, newKey, effective);
        _revokeKey(index, oldKey, effective);
    }

    // ---------------------------------------------------------------- checkpoints: writes
    /// Anchor the log at `size` leaves with Merkle tree hash `root`. Operator only.
    /// The first checkpoint takes no proof; every later one must come with the RFC 9162
    /// consistency proof from the latest checkpoint, or the transaction reverts.
    function publishCheckpoint(uint64 size, bytes32 root, bytes32[] calldata consistencyProof)
        external
        onlyOperator
    {
        if (root == bytes32(0)) revert ZeroRoot();
        uint64 previous = _latestSize;
        if (size <= previous) revert SizeNotIncreasing(previous, size);
        if (previous == 0) {
            if (consistencyProof.length != 0) revert UnexpectedProof(consistencyProof.length);
        } else {
            verifyConsistency(previous, size, _roots[previous], root, consistencyProof);
        }
        uint64 index = _checkpointCount;
        _roots[size] = root;
        _meta[size] = CheckpointMeta(previous, uint64(block.number), uint64(block.timestamp), index);
        _latestSize = size;
        _checkpointCount = index + 1;
        emit CheckpointPublished(size, root, previous, index);
    }

    // ---------------------------------------------------------------- checkpoints: views
    /// The latest checkpoint. Reverts with NoCheckpoint before the first one.
    function latestCheckpoint()
        external
        view
        returns (
            uint64 size,
            bytes32 root,
            uint64 previousSize,
            uint64 blockNumber,
            uint64 timestamp,
            uint64 index
        )
    {
        size = _latestSize;
        if (size == 0) revert NoCheckpoint();
        CheckpointMeta storage m = _meta[size];
        return (size, _roots[size], m.previousSize, m.blockNumber, m.timestamp, m.index);
    }

    /// The checkpoint at `size`. Reverts with UnknownCheckpoint if none was published there.
    function checkpoint(uint64 size)
        external
        view
        returns (
            bytes32 root,
            uint64 previousSize,
            uint64 blockNumber,
            uint64 timestamp,
            uint64 index
        )
    {
        root = _roots[size];
        if (root == bytes32(0)) revert UnknownCheckpoint(size);
        CheckpointMeta storage m = _meta[size];
        return (root, m.previousSize, m.blockNumber, m.timestamp, m.index);
    }

    function checkpointCount() external view returns (uint64) {
        return _checkpointCount;
    }

    /// Check that `leafHash` is leaf `index` of the anchored tree of `size` leaves.
    /// Returns that checkpoint's root; reverts (UnknownCheckpoint, IndexOutOfRange,
    /// ProofLength, InclusionRootMismatch) when the proof does not hold.
    function verifyInclusion(uint64 size, uint256 index, bytes32 leafHash, bytes32[] calldata proof)
        external
        view
        returns (bytes32 root)
    {
        root = _roots[size];
        if (root == bytes32(0)) revert UnknownCheckpoint(size);
        bytes32 computed = rootFromInclusionProof(size, index, leafHash, proof);
        if (computed != root) revert InclusionRootMismatch(computed, root);
    }

    /// The root implied by an inclusion proof (RFC 9162 2.1.3.2); reverts if it is malformed.
    function rootFromInclusionProof(
        uint64 size,
        uint256 index,
        bytes32 leafHash,
        bytes32[] calldata proof
    ) public view returns (bytes32 r) {
        if (index >= size) revert IndexOutOfRange(index, size);
        uint256 fn = index;
        uint256 sn = size - 1;
        r = leafHash;
        for (uint256 i = 0; i < proof.length; ++i) {
            if (sn == 0) revert ProofLength(proof.length);
            if (fn & 1 == 1 || fn == sn) {
                r = _hashChildren(proof[i], r);
                while (fn & 1 == 0 && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
            } else {
                r = _hashChildren(r, proof[i]);
            }
            fn >>= 1;
            sn >>= 1;
        }
        if (sn != 0) revert ProofLength(proof.length);
    }

    /// Check that the tree (size2, root2) extends the tree (size1, root1) (RFC 9162 2.1.4.2).
    /// Reverts on failure. A proof from the empty tree proves nothing and is refused.
    function verifyConsistency(
        uint64 size1,
        uint64 size2,
        bytes32 root1,
        bytes32 root2,
        bytes32[] calldata proof
    ) public view {
        if (size1 == 0) revert EmptyTreeProof();
        if (size2 < size1) revert SizesOutOfOrder(size1, size2);
        if (size1 == size2) {
            if (proof.length != 0) revert ProofLength(proof.length);
            if (root1 != root2) revert NewRootMismatch(root2, root1);
            return;
        }
        if (proof.length == 0) revert ProofLength(0);
        // A power-of-two size1 is itself a node of the new tree: the proof omits it.
        uint256 start = size1 & (size1 - 1) == 0 ? 0 : 1;
        bytes32 fr = start == 0 ? root1 : proof[0];
        bytes32 sr = fr;
        uint256 fn = size1 - 1;
        uint256 sn = size2 - 1;
        while (fn & 1 == 1) {
            fn >>= 1;
            sn >>= 1;
        }
        for (uint256 i = start; i < proof.length; ++i) {
            if (sn == 0) revert ProofLength(proof.length);
            bytes32 c = proof[i];
            if (fn & 1 == 1 || fn == sn) {
                fr = _hashChildren(c, fr);
                sr = _hashChildren(c, sr);
                while (fn & 1 == 0 && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
            } else {
                sr = _hashChildren(sr, c);
            }
            fn >>= 1;
            sn >>= 1;
        }
        if (sn != 0) revert ProofLength(proof.length);
        if (fr != root1) revert OldRootMismatch(fr, root1);
        if (sr != root2) revert NewRootMismatch(sr, root2);
    }

    // ---------------------------------------------------------------- registry: views
    /// A participant by id. Reverts with UnknownParticipant.
    function participant(string calldata id)
        external
        view
        returns (string memory name, uint32 roles, uint64 registeredAt, address[] memory keys)
    {
        uint256 index = _indexOf(id);
        Participant storage p = _participants[index];
        return (p.name, p.roles, p.registeredAt, _keysOf[index]);
    }

    function participantCount() external view returns (uint256) {
        return _participantCount;
    }

    /// The id of the `index`-th registered participant (0-based, in registration order).
    /// Reverts with ParticipantIndexOutOfRange past the end.
    function participantIdAt(uint256 index) external view returns (string memory) {
        if (index >= _participantCount) revert ParticipantIndexOutOfRange(index, _participantCount);
        return _participants[index].id;
    }

    /// Whose key `key` is and its validity window. Reverts with UnknownKey.
    function keyInfo(address key)
        external
        view
        returns (string memory participantId, uint64 validFrom, uint64 revokedFrom)
    {
        Key storage k = _keys[key];
        if (k.participant == 0) revert UnknownKey(key);
        return (_participants[k.participant - 1].id, k.validFrom, k.revokedFrom);
    }

    /// Whether `key` was a valid key of `participantId` at block `blockNumber`.
    /// Reverts with UnknownParticipant; an unknown key or another participant's key is false.
    function isKeyValidAt(string calldata participantId, address key, uint64 blockNumber)
        external
        view
        returns (bool)
    {
        uint256 index = _indexOf(participantId);
        Key storage k = _keys[key];
        return k.participant == index + 1 && _validAt(k, blockNumber);
    }

    /// Whether `account` may act as operator now.
    function isOperator(address account) external view returns (bool) {
        return _isOperator(account);
    }

    // ---------------------------------------------------------------- internals
    function _register(string memory id, string memory name, uint32 roles)
        private
        returns (uint256 index)
    {
        if (bytes(id).length == 0) revert EmptyParticipantId();
        if (roles == 0) revert NoRoles();
        if (roles & ~ALL_ROLES != 0) revert UnknownRoles(roles);
        bytes32 idHash = keccak256(bytes(id));
        if (_participantIndex[idHash] != 0) revert ParticipantExists(id);
        index = _participantCount;
        _participants[index] = Participant(roles, uint64(block.number), id, name);
        _participantCount = index + 1;
        _participantIndex[idHash] = index + 1;
        emit ParticipantRegistered(idHash, id, name, roles);
    }

    function _addKey(uint256 index, address key, uint64 validFrom) private {
        if (key == address(0)) revert ZeroAddress();
        Key storage k = _keys[key];
        if (k.participant != 0) revert KeyExists(key, _participants[k.participant - 1].id);
        _keys[key] = Key(uint64(index + 1), validFrom, 0);
        _keysOf[index].push(key);
        emit KeyAdded(keccak256(bytes(_participants[index].id)), key, validFrom);
    }

    function _revokeKey(uint256 index, address key, uint64 revokedFrom) private {
        Key storage k = _keys[key];
        if (k.revokedFrom != 0) revert KeyAlreadyRevoked(key, k.revokedFrom);
        if (revokedFrom < k.validFrom) revert EffectiveBlockBeforeValidFrom(revokedFrom, k.validFrom);
        k.revokedFrom = revokedFrom;
        emit KeyRevoked(keccak256(bytes(_participants[index].id)), key, revokedFrom);
    }

    function _indexOf(string calldata id) private view returns (uint256) {
        uint256 indexPlusOne = _participantIndex[keccak256(bytes(id))];
        if (indexPlusOne == 0) revert UnknownParticipant(id);
        return indexPlusOne - 1;
    }

    function _keyOwner(address key) private view returns (uint256) {
        uint64 participantPlusOne = _keys[key].participant;
        if (participantPlusOne == 0) revert UnknownKey(key);
        return participantPlusOne - 1;
    }

    /// Operators manage every participant; a participant manages itself with a valid key.
    function _requireManager(uint256 index) private view {
        Key storage k = _keys[msg.sender];
        bool own = k.participant == index + 1 && _validAt(k, uint64(block.number));
        if (!own && !_isOperator(msg.sender)) {
            revert NotAuthorized(msg.sender, _participants[index].id);
        }
    }

    /// `effectiveBlock`, or the current block for 0; reverts for a block in the past.
    function _notPast(uint64 effectiveBlock) private view returns (uint64) {
        if (effectiveBlock == 0) return uint64(block.number);
        if (effectiveBlock < block.number) {
            revert EffectiveBlockInPast(effectiveBlock, uint64(block.number));
        }
        return effectiveBlock;
    }

    function _isOperator(address account) private view returns (bool) {
        Key storage k = _keys[account];
        if (k.participant == 0 || !_validAt(k, uint64(block.number))) return false;
        return _participants[k.participant - 1].roles & ROLE_OPERATOR != 0;
    }

    function _validAt(Key storage k, uint64 blockNumber) private view returns (bool) {
        return k.validFrom <= blockNumber && (k.revokedFrom == 0 || blockNumber < k.revokedFrom);
    }

    /// SHA-256(0x01 || left || right) through the precompile at 0x02, in scratch memory past the
    /// free memory pointer: `sha256(abi.encodePacked(...))` allocates fresh memory on every call,
    /// and that alone costs ~1000 gas per proof element of a large log.
    function _hashChildren(bytes32 left, bytes32 right) private view returns (bytes32 h) {
        bool ok;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore8(ptr, 0x01) // RFC 6962 interior-node prefix
            mstore(add(ptr, 0x01), left)
            mstore(add(ptr, 0x21), right)
            ok := staticcall(gas(), 0x02, ptr, 0x41, 0x00, 0x20)
            h := mload(0x00)
        }
        if (!ok) revert Sha256Failed();
    }
}
