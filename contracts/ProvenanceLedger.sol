// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title ProvenanceLedger
/// @notice Anchors an append-only RFC 6962 / RFC 9162 Merkle log (SHA-256) and is the registry
/// of record for the organisations that sign its records.
///
/// Checkpoints: the operator publishes (size, root) together with a consistency proof from the
/// previous checkpoint; the proof is checked here, so a root that does not extend the anchored
/// history (a rewritten or forked log) can never be stored, whoever sends it. Every checkpoint
/// is kept, and `verifyInclusion` checks a receipt's inclusion proof against chain state alone.
///
/// Registry: participants (organisations) with role bit flags and a history of them, and
/// signing keys (addresses) per participant, each valid over blocks [validFrom, revokedFrom).
/// An address is bound to one participant forever, so "which participant signed at block B"
/// never changes its answer. A record counts as signed by participant P when its signer was a
/// key of P, and P held some role, at the block of the first checkpoint that covered it
/// (`coveringCheckpoint`, `isKeyValidAt`).
///
/// Keys change only forward in time: a key is valid from the block that binds it, and a
/// revocation takes effect at the block that carries it, never earlier (nobody can disown
/// what a key signed before) and never later (nothing can be scheduled out of reach).
/// Binding a key needs proof of possession: an EIP-712 `KeyBinding` signature by the new key.
/// A participant's keys change only with its consent: the sender, or the signer of an EIP-712
/// `KeyChange` authorisation, is one of its currently valid keys. Operators may revoke any key,
/// and may bind a key to a participant that has no unrevoked key left (recovery); both show
/// on chain in the events, which name who authorised each change.
///
/// Authority: an "operator" is any address that is a currently valid key of a participant with
/// ROLE_OPERATOR. Operators publish checkpoints, register participants, set roles and revoke
/// keys. The deployer becomes the first operator. There is no other owner or upgrade path.
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

    // ---------------------------------------------------------------- EIP-712
    // The same domain as the records' signatures: name "forgeproof", version "1", this chain and
    // this contract. A signature made for one deployment means nothing to another.
    bytes32 private constant DOMAIN_TYPEHASH = keccak256(
        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    );
    bytes32 private constant NAME_HASH = keccak256("forgeproof");
    bytes32 private constant VERSION_HASH = keccak256("1");
    /// Signed by a key being bound to `participant`: proof that its holder consents.
    bytes32 public constant KEY_BINDING_TYPEHASH =
        keccak256("KeyBinding(string participant,address key,uint256 nonce)");
    /// Signed by a currently valid key of `participant`: consent to add `addKey` and/or revoke
    /// `revokeKey` (the zero address for "none").
    bytes32 public constant KEY_CHANGE_TYPEHASH = keccak256(
        "KeyChange(string participant,address addKey,address revokeKey,uint256 nonce)"
    );
    // secp256k1 order / 2: signatures with a higher s are malleable copies (EIP-2).
    uint256 private constant HALF_ORDER =
        0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    // ---------------------------------------------------------------- storage
    struct Participant {
        uint32 roles;
        uint64 registeredAt; // block number
        uint32 activeKeys; // keys bound and not revoked
        uint64 nonce; // key changes so far: every KeyBinding / KeyChange signature names it
        string id;
        string name;
    }

    struct Key {
        uint64 participant; // index into _participants + 1; 0 = unknown key
        uint64 validFrom; // first block at which the key is valid
        uint64 revokedFrom; // first block at which it is not valid any more; 0 = not revoked
    }

    struct RoleChange {
        uint64 fromBlock;
        uint32 roles;
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
    mapping(uint256 participantIndex => RoleChange[] history) private _roleHistory;
    mapping(address key => Key) private _keys;
    // The blocks that hold registry events, ascending, each once: a mirror fetches the logs of
    // these blocks only, and learns that nothing changed from one call (`registryBlockCount`).
    uint64[] private _registryBlocks;

    mapping(uint64 size => bytes32 root) private _roots;
    mapping(uint64 size => CheckpointMeta) private _meta;
    uint64 private _latestSize;
    uint64 private _checkpointCount;

    // ---------------------------------------------------------------- events
    event ParticipantRegistered(bytes32 indexed idHash, string id, string name, uint32 roles);
    event RolesChanged(bytes32 indexed idHash, string id, uint32 previousRoles, uint32 roles);
    /// `authorizedBy`: the participant's own key that consented, or the operator key that
    /// registered it or recovered it.
    event KeyAdded(
        bytes32 indexed idHash, address indexed key, uint64 validFrom, address authorizedBy
    );
    event KeyRevoked(
        bytes32 indexed idHash, address indexed key, uint64 revokedFrom, address authorizedBy
    );
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
    error MalformedSignature();
    error KeyProofInvalid(address key, address recovered);
    error AuthorizationInvalid(address recovered, string participantId);
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
    /// The deployer's address becomes the operator's first key (its transaction proves it).
    constructor(string memory operatorId, string memory operatorName) {
        uint256 index = _register(operatorId, operatorName, ROLE_OPERATOR);
        _addKey(index, msg.sender, msg.sender);
        _participants[index].nonce = 1;
    }

    modifier onlyOperator() {
        if (!_isOperator(msg.sender)) revert NotOperator(msg.sender);
        _;
    }

    // ---------------------------------------------------------------- registry: writes
    /// Register an organisation with its first signing key. Operator only; ids are unique and
    /// never reused. `keyProof`: the key's EIP-712 `KeyBinding(id, key, 0)` signature.
    function registerParticipant(
        string calldata id,
        string calldata name,
        uint32 roles,
        address key,
        bytes calldata keyProof
    ) external onlyOperator {
        uint256 index = _register(id, name, roles);
        _requireKeyProof(index, key, keyProof);
        _addKey(index, key, msg.sender);
        _participants[index].nonce += 1;
    }

    /// Replace a participant's roles (0 suspends it: its keys sign nothing new while it has
    /// none). Operator only. The history is kept: `rolesAt` answers for any past block.
    function setRoles(string calldata id, uint32 roles) external onlyOperator {
        if (roles & ~ALL_ROLES != 0) revert UnknownRoles(roles);
        uint256 index = _indexOf(id);
        Participant storage p = _participants[index];
        uint32 previous = p.roles;
        p.roles = roles;
        _recordRoles(index, roles);
        _touchRegistry();
        emit RolesChanged(keccak256(bytes(id)), id, previous, roles);
    }

    /// Bind another key to a participant, valid from this block on. `keyProof`: the new key's
    /// `KeyBinding` signature. Consent: the sender is a valid key of the participant, or
    /// `authorization` is a valid key's `KeyChange(id, key, 0, nonce)` signature; or, for a
    /// participant without any unrevoked key, the sender is an operator (recovery).
    function addKey(
        string calldata id,
        address key,
        bytes calldata keyProof,
        bytes calldata authorization
    ) external {
        uint256 index = _indexOf(id);
        address by = _consent(index, key, address(0), authorization);
        if (by == address(0)) {
            if (_participants[index].activeKeys != 0 || !_isOperator(msg.sender)) {
                revert NotAuthorized(msg.sender, id);
            }
            by = msg.sender;
        }
        _requireKeyProof(index, key, keyProof);
        _addKey(index, key, by);
        _participants[index].nonce += 1;
    }

    /// Replace `oldKey` by `newKey` in this block: the new key is valid from it, the old one no
    /// longer. Needs the participant's consent as for `addKey` (an operator alone cannot
    /// rotate: it may only revoke, then recover) and the new key's `KeyBinding` signature.
    function rotateKey(
        address oldKey,
        address newKey,
        bytes calldata keyProof,
        bytes calldata authorization
    ) external {
        uint256 index = _keyOwner(oldKey);
        address by = _consent(index, newKey, oldKey, authorization);
        if (by == address(0)) revert NotAuthorized(msg.sender, _participants[index].id);
        _requireKeyProof(index, newKey, keyProof);
        _revokeKey(index, oldKey, by);
        _addKey(index, newKey, by);
        _participants[index].nonce += 1;
    }

    /// Revoke a key from this block on: what it signs is not valid from here, what it signed
    /// and was anchored before stays valid. By an operator, by one of the owning participant's
    /// currently valid keys (a key may revoke itself), or with such a key's
    /// `KeyChange(id, 0, key, nonce)` signature as `authorization`.
    function revokeKey(address key, bytes calldata authorization) external {
        uint256 index = _keyOwner(key);
        address by = _consent(index, address(0), key, authorization);
        if (by == address(0)) {
            if (!_isOperator(msg.sender)) revert NotAuthorized(msg.sender, _participants[index].id);
            by = msg.sender;
        }
        _revokeKey(index, key, by);
        _participants[index].nonce += 1;
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

    /// The first checkpoint that covers leaf `index`, found by walking back from the checkpoint
    /// at `fromSize` (0: the latest) along `previousSize`: the checkpoint whose size exceeds
    /// `index` and whose predecessor's does not. Its block is when the record was first
    /// anchored, the block at which its signer's key is judged. Reverts with UnknownCheckpoint
    /// or IndexOutOfRange. Pass the receipt's checkpoint (or any later one) as `fromSize`.
    function coveringCheckpoint(uint256 index, uint64 fromSize)
        external
        view
        returns (uint64 size, uint64 blockNumber)
    {
        size = fromSize == 0 ? _latestSize : fromSize;
        if (_roots[size] == bytes32(0)) revert UnknownCheckpoint(size);
        if (index >= size) revert IndexOutOfRange(index, size);
        uint64 previous = _meta[size].previousSize;
        while (previous > index) {
            size = previous;
            previous = _meta[size].previousSize;
        }
        return (size, _meta[size].blockNumber);
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
    /// A participant by id: name, current roles, registration block, every key it ever had,
    /// and its key-change nonce. Reverts with UnknownParticipant.
    function participant(string calldata id)
        external
        view
        returns (
            string memory name,
            uint32 roles,
            uint64 registeredAt,
            address[] memory keys,
            uint64 nonce
        )
    {
        uint256 index = _indexOf(id);
        Participant storage p = _participants[index];
        return (p.name, p.roles, p.registeredAt, _keysOf[index], p.nonce);
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

    /// The roles `participantId` held at block `blockNumber` (0 before its registration).
    function rolesAt(string calldata participantId, uint64 blockNumber)
        external
        view
        returns (uint32)
    {
        return _rolesAt(_indexOf(participantId), blockNumber);
    }

    /// Whether `key` could sign for `participantId` at block `blockNumber`: it was a valid key
    /// of the participant then, and the participant held some role. Reverts with
    /// UnknownParticipant; an unknown key or another participant's key is false.
    function isKeyValidAt(string calldata participantId, address key, uint64 blockNumber)
        external
        view
        returns (bool)
    {
        uint256 index = _indexOf(participantId);
        Key storage k = _keys[key];
        return k.participant == index + 1 && _validAt(k, blockNumber)
            && _rolesAt(index, blockNumber) != 0;
    }

    /// Whether `account` may act as operator now.
    function isOperator(address account) external view returns (bool) {
        return _isOperator(account);
    }

    /// How many blocks hold registry events.
    function registryBlockCount() external view returns (uint256) {
        return _registryBlocks.length;
    }

    /// The blocks that hold registry events, from the `start`-th (0-based) on, at most `count`.
    function registryBlocks(uint256 start, uint256 count) external view returns (uint64[] memory) {
        uint256 n = _registryBlocks.length;
        uint256 end = start + count < n ? start + count : n;
        uint64[] memory out = new uint64[](end > start ? end - start : 0);
        for (uint256 i = start; i < end; ++i) {
            out[i - start] = _registryBlocks[i];
        }
        return out;
    }

    /// The EIP-712 domain separator of this deployment (records and key changes).
    function domainSeparator() public view returns (bytes32) {
        return keccak256(
            abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this))
        );
    }

    /// The digest `key` must sign to be bound to `participantId` next (`KeyBinding`).
    function keyBindingDigest(string calldata participantId, address key)
        external
        view
        returns (bytes32)
    {
        uint256 index = _indexOf(participantId);
        return _keyBindingDigest(index, key);
    }

    /// The digest a valid key of `participantId` signs to consent to its next key change
    /// (`KeyChange`; the zero address for "none").
    function keyChangeDigest(string calldata participantId, address addKey_, address revokeKey_)
        external
        view
        returns (bytes32)
    {
        uint256 index = _indexOf(participantId);
        return _keyChangeDigest(index, addKey_, revokeKey_);
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
        _participants[index] = Participant(roles, uint64(block.number), 0, 0, id, name);
        _participantCount = index + 1;
        _participantIndex[idHash] = index + 1;
        _recordRoles(index, roles);
        _touchRegistry();
        emit ParticipantRegistered(idHash, id, name, roles);
    }

    function _touchRegistry() private {
        uint256 n = _registryBlocks.length;
        if (n == 0 || _registryBlocks[n - 1] != block.number) {
            _registryBlocks.push(uint64(block.number));
        }
    }

    /// Append to the role history; a second change in the same block replaces the first.
    function _recordRoles(uint256 index, uint32 roles) private {
        RoleChange[] storage history = _roleHistory[index];
        uint256 n = history.length;
        if (n != 0 && history[n - 1].fromBlock == block.number) {
            history[n - 1].roles = roles;
        } else {
            history.push(RoleChange(uint64(block.number), roles));
        }
    }

    function _rolesAt(uint256 index, uint64 blockNumber) private view returns (uint32) {
        RoleChange[] storage history = _roleHistory[index];
        for (uint256 i = history.length; i > 0; --i) {
            if (history[i - 1].fromBlock <= blockNumber) return history[i - 1].roles;
        }
        return 0;
    }

    function _addKey(uint256 index, address key, address by) private {
        if (key == address(0)) revert ZeroAddress();
        Key storage k = _keys[key];
        if (k.participant != 0) revert KeyExists(key, _participants[k.participant - 1].id);
        _keys[key] = Key(uint64(index + 1), uint64(block.number), 0);
        _keysOf[index].push(key);
        _participants[index].activeKeys += 1;
        _touchRegistry();
        emit KeyAdded(keccak256(bytes(_participants[index].id)), key, uint64(block.number), by);
    }

    function _revokeKey(uint256 index, address key, address by) private {
        Key storage k = _keys[key];
        if (k.revokedFrom != 0) revert KeyAlreadyRevoked(key, k.revokedFrom);
        k.revokedFrom = uint64(block.number);
        _participants[index].activeKeys -= 1;
        _touchRegistry();
        emit KeyRevoked(keccak256(bytes(_participants[index].id)), key, uint64(block.number), by);
    }

    /// Who consents, for participant `index`, to adding `added` and/or revoking `revoked`:
    /// the sender if it is one of the participant's valid keys, else the signer of
    /// `authorization` (which must then be such a key), else nobody (address 0).
    function _consent(uint256 index, address added, address revoked, bytes calldata authorization)
        private
        view
        returns (address)
    {
        if (_isOwnValidKey(index, msg.sender)) return msg.sender;
        if (authorization.length == 0) return address(0);
        address signer = _recover(_keyChangeDigest(index, added, revoked), authorization);
        if (!_isOwnValidKey(index, signer)) {
            revert AuthorizationInvalid(signer, _participants[index].id);
        }
        return signer;
    }

    function _requireKeyProof(uint256 index, address key, bytes calldata proof) private view {
        if (key == address(0)) revert ZeroAddress();
        address signer = _recover(_keyBindingDigest(index, key), proof);
        if (signer != key) revert KeyProofInvalid(key, signer);
    }

    function _keyBindingDigest(uint256 index, address key) private view returns (bytes32) {
        Participant storage p = _participants[index];
        bytes32 structHash =
            keccak256(abi.encode(KEY_BINDING_TYPEHASH, keccak256(bytes(p.id)), key, p.nonce));
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    function _keyChangeDigest(uint256 index, address added, address revoked)
        private
        view
        returns (bytes32)
    {
        Participant storage p = _participants[index];
        bytes32 structHash = keccak256(
            abi.encode(KEY_CHANGE_TYPEHASH, keccak256(bytes(p.id)), added, revoked, p.nonce)
        );
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    /// The signer of a 65-byte `r || s || v` signature (v 27 or 28, low s), as Ethereum signs;
    /// address 0 when no key recovers. Reverts with MalformedSignature.
    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address) {
        if (signature.length != 65) revert MalformedSignature();
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if ((v != 27 && v != 28) || uint256(s) > HALF_ORDER) revert MalformedSignature();
        return ecrecover(digest, v, r, s);
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

    function _isOwnValidKey(uint256 index, address account) private view returns (bool) {
        Key storage k = _keys[account];
        return account != address(0) && k.participant == index + 1
            && _validAt(k, uint64(block.number));
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
