/* forgeproof receipt verifier for the browser: trusts no server.
 *
 * The checks of ledger/receipts.py `verify_receipt`, by the same names and with the same
 * outcome (docs/receipt.md specifies them): format, canonical, signature, key (chain),
 * inclusion, checkpoint, anchor. A check that needs what is not at hand is "skipped" with the
 * reason, never passed: without a JSON-RPC node, key (chain) and anchor; always checkpoint
 * (it needs the operator's log, and this page trusts no server).
 *
 * Plain browser JavaScript, no build step: it needs the vendored ethers 6 UMD bundle loaded
 * first (global `ethers`, for Keccak-256, SHA-256, secp256k1 recovery and ABI coding) and
 * exposes `window.ForgeproofVerify`:
 *
 *   verifyReceipt(textOrObject, opts)  -> Promise<{ok, checks: [{name, status, detail}]}>
 *   verifyExport(textOrObject, opts)   -> Promise<{ok, checks, receipts: [...]}>
 *   verifyAny(text, opts)              -> Promise<{kind, ok, checks, receipts, summary}>
 *   parseStrict(text), canonicalJson(value): the JSON reader and RFC 8785 writer it uses
 *
 * opts.rpc: a JSON-RPC URL; with it the chain checks run against the contract the receipt's
 * EIP-712 domain names. Read receipts as text where you can: the strict reader refuses
 * duplicate keys and keeps apart an integer and a float (`1` and `1.0`), as Python does.
 *
 * Offline verification is synchronous inside (one promise per receipt, none per hash): a
 * thousand receipts take about a second in Chromium (bench/browser_verify.py).
 */
(function (root) {
  "use strict";

  const E = root.ethers;
  if (!E) throw new Error("verify.js needs ethers 6 loaded first (static/vendor/ethers.umd.min.js)");

  const FORMAT = "forgeproof-receipt/1";
  const AUDIT_FORMAT = "forgeproof-epcis-audit/1";
  const KEY_CHECK = "key (chain)";
  const ESSENTIAL = ["canonical", "signature", "inclusion"];
  const MAX_PAYLOAD_DEPTH = 32; // ledger/records.py
  const MAX_RECORD_BYTES = 1024 * 1024;
  const MAX_JSON_DEPTH = 1000; // about where Python's json module gives up (RecursionError)
  const SAFE = 2n ** 53n - 1n;
  const U64 = 2n ** 64n - 1n;
  // secp256k1 group order: s above half of it is a malleable copy (EIP-2).
  const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

  // ------------------------------------------------------------------------------- errors
  // What the caller of a check can tell apart, as ledger.errors does: a refusal (failed), a
  // check that cannot be made yet (skipped), and everything else (failed too).
  class LedgerError extends Error {}
  class InputError extends LedgerError {}
  class VerificationError extends LedgerError {}
  class NotFound extends LedgerError {}
  class ChainError extends LedgerError {}
  class NotYetAnchored extends LedgerError {}

  // Python's repr of a JSON value, near enough for messages that quote one.
  function pyRepr(v) {
    if (v === undefined || v === null) return "None";
    if (v === true) return "True";
    if (v === false) return "False";
    if (typeof v === "string") return v.includes("'") && !v.includes('"') ? JSON.stringify(v) : "'" + v.replace(/\\/g, "\\\\").replace(/'/g, "\\'").replace(/\n/g, "\\n") + "'";
    if (typeof v === "number" || typeof v === "bigint") return String(v);
    if (Array.isArray(v)) return "[" + v.map(pyRepr).join(", ") + "]";
    return "{" + Object.keys(v).map((k) => pyRepr(k) + ": " + pyRepr(v[k])).join(", ") + "}";
  }
  const cut = (s, n) => (s.length > n ? s.slice(0, n) : s);

  // --------------------------------------------------------------------- strict JSON reader
  // JSON.parse keeps the last of two equal keys and reads 1.0 as 1; a receipt is read as
  // Python's `loads_strict` reads it: duplicate keys refused, and a number written with a
  // fraction or exponent stays a float (not a JSON integer, whatever its value). Integers
  // beyond 2**53 - 1 are read exactly, as BigInt.
  const FLOATS = new WeakMap(); // object or array -> Set of keys whose number was a float

  function isFloat(container, key) {
    const s = FLOATS.get(container);
    return s !== undefined && s.has(key);
  }

  const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
  const ESCAPES = { 34: '"', 92: "\\", 47: "/", 98: "\b", 102: "\f", 110: "\n", 114: "\r", 116: "\t" };

  function parseStrict(text) {
    let i = 0;
    let lastFloat = false;
    const n = text.length;
    const fail = (what) => {
      throw new InputError(`not JSON (truncated?): ${what} at character ${i}`);
    };
    const ws = () => {
      for (; i < n; i++) {
        const c = text.charCodeAt(i);
        if (c !== 32 && c !== 10 && c !== 13 && c !== 9) break;
      }
    };
    const mark = (container, key) => {
      let s = FLOATS.get(container);
      if (s === undefined) FLOATS.set(container, (s = new Set()));
      s.add(key);
    };

    function string() {
      const start = ++i; // past the opening quote
      for (; i < n; i++) {
        const c = text.charCodeAt(i);
        if (c === 34) return text.slice(start, i++);
        if (c === 92) break;
        if (c < 32) fail("a control character in a string");
      }
      if (i >= n) fail("an unterminated string");
      let out = text.slice(start, i);
      while (i < n) {
        const c = text.charCodeAt(i);
        if (c === 34) {
          i++;
          return out;
        }
        if (c < 32) fail("a control character in a string");
        if (c !== 92) {
          out += text[i++];
          continue;
        }
        const e = text.charCodeAt(i + 1);
        if (e === 117) {
          const hex = text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("a bad \\u escape");
          out += String.fromCharCode(parseInt(hex, 16));
          i += 6;
        } else if (ESCAPES[e] !== undefined) {
          out += ESCAPES[e];
          i += 2;
        } else {
          fail("a bad escape");
        }
      }
      return fail("an unterminated string");
    }

    function number() {
      NUMBER.lastIndex = i;
      const m = NUMBER.exec(text);
      if (m === null) fail("a malformed number");
      i = NUMBER.lastIndex;
      if (m[1] !== undefined || m[2] !== undefined) {
        lastFloat = true;
        return Number(m[0]);
      }
      lastFloat = false;
      if (m[0].length < 16) return Number(m[0]);
      const big = BigInt(m[0]);
      return big <= SAFE && big >= -SAFE ? Number(big) : big;
    }

    function literal(word, v) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
      return fail("an unexpected word");
    }

    function value(depth) {
      if (depth > MAX_JSON_DEPTH) throw new InputError("not JSON this verifier reads: nested too deeply");
      ws();
      if (i >= n) fail("the end of the text where a value should be");
      const c = text.charCodeAt(i);
      if (c === 123) return object(depth);
      if (c === 91) return array(depth);
      if (c === 34) return string();
      if (c === 116) return literal("true", true);
      if (c === 102) return literal("false", false);
      if (c === 110) return literal("null", null);
      if (c === 45 || (c >= 48 && c <= 57)) return number();
      return fail(`${JSON.stringify(text[i])} where a value should be`);
    }

    function object(depth) {
      const out = {};
      i++;
      ws();
      if (text.charCodeAt(i) === 125) {
        i++;
        return out;
      }
      for (;;) {
        ws();
        if (text.charCodeAt(i) !== 34) fail("a missing property name");
        const key = string();
        ws();
        if (text.charCodeAt(i) !== 58) fail("a missing ':'");
        i++;
        lastFloat = false;
        const v = value(depth + 1);
        if (typeof v === "number" && lastFloat) mark(out, key);
        if (Object.prototype.hasOwnProperty.call(out, key)) {
          throw new InputError(`duplicate key ${pyRepr(key)} in a JSON object`);
        }
        if (key === "__proto__") {
          Object.defineProperty(out, key, { value: v, writable: true, enumerable: true, configurable: true });
        } else {
          out[key] = v;
        }
        ws();
        const c = text.charCodeAt(i++);
        if (c === 125) return out;
        if (c !== 44) {
          i--;
          fail("a missing ',' or '}'");
        }
      }
    }

    function array(depth) {
      const out = [];
      i++;
      ws();
      if (text.charCodeAt(i) === 93) {
        i++;
        return out;
      }
      for (;;) {
        lastFloat = false;
        const v = value(depth + 1);
        if (typeof v === "number" && lastFloat) mark(out, out.length);
        out.push(v);
        ws();
        const c = text.charCodeAt(i++);
        if (c === 93) return out;
        if (c !== 44) {
          i--;
          fail("a missing ',' or ']'");
        }
      }
    }

    const result = value(0);
    ws();
    if (i < n) fail("extra data after the JSON value");
    return result;
  }

  // ------------------------------------------------------------------------ the schema
  // docs/receipt.schema.json checked by hand, value for value what ledger/receipts.py
  // `conforms` accepts; on the first thing that does not fit, a sentence that names it.
  const HASH = /^0x[0-9a-f]{64}$/;
  const ADDRESS = /^0x[0-9a-f]{40}$/;
  const SIGNATURE = /^0x[0-9a-f]{128}(1b|1c)$/;
  const KIND = /^[a-z][a-z0-9_]{0,63}$/;
  const PARTICIPANT = /^[A-Za-z0-9._:-]{1,128}$/;
  const TIME = /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,6})?Z$/;

  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  const isInteger = (container, key) => {
    const v = container[key];
    return typeof v === "bigint" || (typeof v === "number" && Number.isInteger(v) && !isFloat(container, key));
  };

  const S = {
    obj: (fields) => ({ t: "obj", fields }),
    str: (re, what) => ({ t: "str", re, what }),
    eq: (value) => ({ t: "eq", value }),
    int: (lo, hi) => ({ t: "int", lo, hi }),
    list: (of, max) => ({ t: "list", of, max }),
    anyObject: { t: "anyObject" },
    nullable: (of) => ({ t: "nullable", of }),
  };
  const HEX = "lower-case hex of the expected length or form";
  const RECEIPT_SCHEMA = S.obj({
    format: S.eq(FORMAT),
    record: S.obj({
      kind: S.str(KIND, "a kind (lower-case letters, digits, _)"),
      payload: S.anyObject,
      producer: S.obj({
        participant: S.str(PARTICIPANT, "a participant id"),
        address: S.str(ADDRESS, HEX),
      }),
      created_at: S.str(TIME, "an RFC 3339 UTC time with Z"),
      salt: S.str(HASH, HEX),
    }),
    signature: S.str(SIGNATURE, HEX),
    domain: S.obj({
      name: S.eq("forgeproof"),
      version: S.eq("1"),
      chainId: S.int(1n, SAFE),
      verifyingContract: S.str(ADDRESS, HEX),
    }),
    leaf_index: S.int(0n, U64),
    leaf_hash: S.str(HASH, HEX),
    inclusion_proof: S.list(S.str(HASH, HEX), 64),
    checkpoint: S.obj({ size: S.int(1n, U64), root: S.str(HASH, HEX) }),
    anchor: S.nullable(
      S.obj({
        chain_id: S.int(1n, SAFE),
        contract: S.str(ADDRESS, HEX),
        tx_hash: S.str(HASH, HEX),
        block_number: S.int(0n, U64),
      })
    ),
  });

  const where = (path) =>
    path.map((p) => (typeof p === "number" ? `[${p}]` : `.${p}`)).join("").replace(/^\./, "") || "receipt";

  // The first problem of `container[key]` under `spec`, or null.
  function problem(spec, container, key, path) {
    const v = container[key];
    const at = where(path);
    const quoted = () => cut(pyRepr(v), 80);
    switch (spec.t) {
      case "nullable":
        return v === null ? null : problem(spec.of, container, key, path);
      case "eq":
        return v === spec.value ? null : `${at}: ${pyRepr(spec.value)} was expected`;
      case "str":
        if (typeof v !== "string") return `${at}: ${quoted()} is not of type string`;
        return spec.re.test(v) ? null : `${at}: ${quoted()} is not ${spec.what}`;
      case "int": {
        if (!isInteger(container, key)) return `${at}: ${quoted()} is not of type integer`;
        const b = BigInt(v);
        if (b < spec.lo) return `${at}: ${v} is less than the minimum of ${spec.lo}`;
        if (b > spec.hi) return `${at}: ${v} is greater than the maximum of ${spec.hi}`;
        return null;
      }
      case "anyObject":
        return isObject(v) ? null : `${at}: ${quoted()} is not of type object`;
      case "list": {
        if (!Array.isArray(v)) return `${at}: ${quoted()} is not of type array`;
        if (v.length > spec.max) return `${at}: ${v.length} items, at most ${spec.max}`;
        for (let j = 0; j < v.length; j++) {
          const p = problem(spec.of, v, j, [...path, j]);
          if (p) return p;
        }
        return null;
      }
      case "obj": {
        if (!isObject(v)) return `${at}: ${quoted()} is not of type object`;
        const names = Object.keys(spec.fields);
        const missing = names.filter((k) => !Object.prototype.hasOwnProperty.call(v, k));
        if (missing.length) {
          return path.length === 0
            ? `receipt is missing ${missing.sort().join(", ")} (truncated?)`
            : `${at}: ${missing.map((k) => `'${k}'`).join(", ")} is a required property`;
        }
        const extra = Object.keys(v).filter((k) => !Object.prototype.hasOwnProperty.call(spec.fields, k));
        if (extra.length) return `${at}: unexpected field(s) ${extra.sort().join(", ")}`;
        for (const k of names) {
          const p = problem(spec.fields[k], v, k, [...path, k]);
          if (p) return p;
        }
        return null;
      }
    }
    throw new Error(`unknown schema node ${spec.t}`);
  }

  // ----------------------------------------------------------------- the record as signed
  function daysIn(month, year) {
    if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
    return [4, 6, 9, 11].includes(month) ? 30 : 31;
  }

  // What pydantic's Record adds to the schema (ledger/records.py): a real date and time, and a
  // payload that can be canonicalised again (nested at most 32 deep, no float that RFC 8785
  // writes as an integer beyond 2**53).
  function recordProblem(record) {
    const m = TIME.exec(record.created_at);
    const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
    if (year < 1) return "created_at: year 0 is out of range";
    if (month < 1 || month > 12) return "created_at: month must be in 1..12";
    if (day < 1 || day > daysIn(month, year)) return "created_at: day is out of range for month";
    if (hour > 23) return "created_at: hour must be in 0..23";
    if (minute > 59) return "created_at: minute must be in 0..59";
    if (second > 59) return "created_at: second must be in 0..59";
    const stack = [[record.payload, 1]];
    while (stack.length) {
      const [node, depth] = stack.pop();
      if (depth > MAX_PAYLOAD_DEPTH) return `payload: nested deeper than ${MAX_PAYLOAD_DEPTH} levels`;
      for (const c of Array.isArray(node) ? node : Object.values(node)) {
        if (c !== null && typeof c === "object") stack.push([c, depth + 1]);
        else if (typeof c === "number" && Math.abs(c) >= 2 ** 53 && Math.abs(c) < 1e21) {
          return `payload: ${c} is written as an integer beyond 2**53 and would not read back as this number: send it as a string`;
        }
      }
    }
    return null;
  }

  // RFC 8785: ECMAScript number and string serialisation, keys sorted by UTF-16 code units.
  // Python raises where JCS cannot carry a value (an integer beyond 2**53, NaN, infinity, a
  // lone surrogate): so does this, with an InputError.
  const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
  function jcsString(s) {
    if (LONE_SURROGATE.test(s)) throw new InputError("input contains non-UTF-8 codepoints (a lone surrogate)");
    return JSON.stringify(s);
  }
  function jcs(v) {
    switch (typeof v) {
      case "string":
        return jcsString(v);
      case "boolean":
        return v ? "true" : "false";
      case "number":
        if (!Number.isFinite(v)) throw new InputError(`${v} is not representable in JCS`);
        return JSON.stringify(v); // -0 is written 0, as RFC 8785 says
      case "bigint":
        throw new InputError(`${v} exceeds safe integer domain for JSON floats`);
      case "object": {
        if (v === null) return "null";
        if (Array.isArray(v)) return "[" + v.map(jcs).join(",") + "]";
        const keys = Object.keys(v).sort();
        let out = "{";
        for (let j = 0; j < keys.length; j++) {
          if (j) out += ",";
          out += jcsString(keys[j]) + ":" + jcs(v[keys[j]]);
        }
        return out + "}";
      }
    }
    throw new InputError(`a ${typeof v} cannot be canonicalised`);
  }

  // ------------------------------------------------------------------------ bytes, hashes
  const HEXCHARS = "0123456789abcdef";
  function hexToBytes(h) {
    const out = new Uint8Array((h.length - 2) >> 1);
    for (let j = 0; j < out.length; j++) out[j] = parseInt(h.substr(2 + 2 * j, 2), 16);
    return out;
  }
  function bytesToHex(b) {
    let s = "0x";
    for (let j = 0; j < b.length; j++) s += HEXCHARS[b[j] >> 4] + HEXCHARS[b[j] & 15];
    return s;
  }
  const utf8 = new TextEncoder();
  const sha256 = (bytes) => hexToBytes(E.sha256(bytes));
  const keccak = (bytes) => hexToBytes(E.keccak256(bytes));
  function concat(...parts) {
    let len = 0;
    for (const p of parts) len += p.length;
    const out = new Uint8Array(len);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
  const LEAF_PREFIX = Uint8Array.of(0);
  const NODE_PREFIX = Uint8Array.of(1);
  const hashLeaf = (data) => sha256(concat(LEAF_PREFIX, data));
  const hashChildren = (l, r) => sha256(concat(NODE_PREFIX, l, r));
  const equalBytes = (a, b) => a.length === b.length && a.every((x, j) => x === b[j]);

  // ------------------------------------------------------------------ RFC 9162 inclusion
  const bitLength = (x) => (x === 0n ? 0 : x.toString(2).length);
  const popcount = (x) => x.toString(2).replace(/0/g, "").length;

  // The root `proof` implies for `leaf` at `index` in a tree of `size` (RFC 9162 2.1.3.2).
  function rootFromInclusionProof(leaf, index, size, proof) {
    if (!(0n <= index && index < size)) throw new VerificationError(`leaf index ${index} is outside a tree of size ${size}`);
    const inner = bitLength(index ^ (size - 1n));
    const want = inner + popcount(index >> BigInt(inner));
    if (proof.length !== want) throw new VerificationError(`inclusion proof has ${proof.length} hashes, expected ${want}`);
    let fn = index;
    let sn = size - 1n;
    let r = leaf;
    for (const p of proof) {
      if (fn & 1n || fn === sn) {
        r = hashChildren(p, r);
        while (!(fn & 1n) && fn) {
          fn >>= 1n;
          sn >>= 1n;
        }
      } else {
        r = hashChildren(r, p);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    return r;
  }

  // -------------------------------------------------------------------- EIP-712 signature
  const DOMAIN_TYPEHASH = keccak(utf8.encode("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"));
  const RECORD_TYPEHASH = keccak(utf8.encode("Record(string kind,string participant,string createdAt,bytes32 commitment)"));
  const word = (big) => hexToBytes("0x" + big.toString(16).padStart(64, "0"));
  const separators = new Map();
  const stringHashes = new Map();

  function keccakString(s) {
    // Kind and participant repeat across receipts: hash each once.
    let h = stringHashes.get(s);
    if (h === undefined) {
      h = keccak(utf8.encode(s));
      if (stringHashes.size < 4096) stringHashes.set(s, h);
    }
    return h;
  }

  function domainSeparator(d) {
    const key = `${d.name}\n${d.version}\n${d.chainId}\n${d.verifyingContract}`;
    let sep = separators.get(key);
    if (sep === undefined) {
      sep = keccak(
        concat(DOMAIN_TYPEHASH, keccakString(d.name), keccakString(d.version), word(BigInt(d.chainId)), word(BigInt(d.verifyingContract)))
      );
      separators.set(key, sep);
    }
    return sep;
  }

  function recordDigest(domain, record, commitment) {
    const struct = keccak(
      concat(RECORD_TYPEHASH, keccakString(record.kind), keccakString(record.producer.participant), keccak(utf8.encode(record.created_at)), commitment)
    );
    return bytesToHex(keccak(concat(Uint8Array.of(0x19, 0x01), domainSeparator(domain), struct)));
  }

  // The address whose key made `signature` over `digest`, refused as ledger/signing.py
  // `recover_digest` refuses: v other than 27/28, s in the upper half (EIP-2), no key.
  function recoverDigest(digest, signature) {
    const r = BigInt(signature.slice(0, 66));
    const s = BigInt("0x" + signature.slice(66, 130));
    const v = parseInt(signature.slice(130, 132), 16);
    if (v !== 27 && v !== 28) throw new VerificationError(`signature v is ${v}, expected 27 or 28`);
    if (!(0n < s && s <= N / 2n)) throw new VerificationError("signature s is not in the lower half of the curve order (EIP-2)");
    if (r === 0n || r >= N) throw new VerificationError("no public key recovers from this signature: r is out of range");
    try {
      return E.recoverAddress(digest, signature).toLowerCase();
    } catch (exc) {
      throw new VerificationError(`no public key recovers from this signature: ${exc.shortMessage || exc.message}`);
    }
  }

  // ----------------------------------------------------------------------- the chain
  const ABI = [
    "function checkpoint(uint64 size) view returns (bytes32 root, uint64 previousSize, uint64 blockNumber, uint64 timestamp, uint64 index)",
    "function coveringCheckpoint(uint256 index, uint64 fromSize) view returns (uint64 size, uint64 blockNumber)",
    "function isKeyValidAt(string participantId, address key, uint64 blockNumber) view returns (bool)",
    "function keyInfo(address key) view returns (string participantId, uint64 validFrom, uint64 revokedFrom)",
    "function rolesAt(string participantId, uint64 blockNumber) view returns (uint32)",
    "event CheckpointPublished(uint64 indexed size, bytes32 root, uint64 previousSize, uint64 index)",
    "error UnknownCheckpoint(uint64 size)",
    "error IndexOutOfRange(uint256 index, uint64 size)",
    "error UnknownParticipant(string id)",
    "error UnknownKey(address key)",
  ];
  const IFACE = new E.Interface(ABI);
  const CHECKPOINT_TOPIC = IFACE.getEvent("CheckpointPublished").topicHash;

  // Role bits of the contract and which roles may sign which kind (ledger/registry.py).
  const ROLE_BITS = { operator: 1, supplier: 2, manufacturer: 4, auditor: 8, maintainer: 16, model_publisher: 32 };
  const WRITING_ROLES = ["manufacturer", "model_publisher", "operator", "supplier"];
  const MODEL_ROLES = ["manufacturer", "operator"];
  const KIND_ROLES = {
    prediction: MODEL_ROLES,
    inspection: MODEL_ROLES,
    model_manifest: ["model_publisher", "operator"],
    alarm: ["operator"],
    outcome: MODEL_ROLES,
    forecast: MODEL_ROLES,
    product_assignment: ["operator"],
    fl_update: ["manufacturer"],
    fl_round: ["operator"],
  };
  const bitsToRoles = (bits) => Object.keys(ROLE_BITS).filter((r) => Number(bits) & ROLE_BITS[r]);
  const rolesForKind = (kind) => (Object.prototype.hasOwnProperty.call(KIND_ROLES, kind) ? KIND_ROLES[kind] : WRITING_ROLES);

  class Reverted extends ChainError {
    constructor(name, args, message) {
      super(message);
      this.errorName = name;
      this.args = args;
    }
  }

  // One node, read only. Answers are remembered for the run (an export's receipts share one
  // checkpoint: the chain is asked once).
  class Rpc {
    constructor(url) {
      this.url = url;
      this.memo = new Map();
      this.id = 0;
    }

    request(method, params) {
      const key = method + JSON.stringify(params);
      let p = this.memo.get(key);
      if (p === undefined) {
        p = this._send(method, params);
        this.memo.set(key, p);
      }
      return p;
    }

    async _send(method, params) {
      let res;
      try {
        res = await fetch(this.url, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ jsonrpc: "2.0", id: ++this.id, method, params }),
          credentials: "omit",
        });
      } catch (exc) {
        throw new ChainError(`cannot reach the JSON-RPC node at ${this.url}: ${exc.message}`);
      }
      if (!res.ok) throw new ChainError(`the JSON-RPC node at ${this.url} answered HTTP ${res.status}`);
      let body;
      try {
        body = await res.json();
      } catch (exc) {
        throw new ChainError(`the JSON-RPC node at ${this.url} did not answer JSON`);
      }
      if (body.error) {
        const data = typeof body.error.data === "string" ? body.error.data : body.error.data && body.error.data.data;
        let parsed = null;
        if (typeof data === "string" && data.length >= 10) {
          try {
            parsed = IFACE.parseError(data);
          } catch (exc) {
            parsed = null;
          }
        }
        if (parsed) throw new Reverted(parsed.name, parsed.args, `${method} reverted: ${parsed.name}(${parsed.args.join(", ")})`);
        throw new ChainError(`${method} failed on the node: ${body.error.message || JSON.stringify(body.error)}`);
      }
      return body.result;
    }
  }

  // The ProvenanceLedger contract at `address`, through `rpc`: what ledger/chain reads.
  class Chain {
    constructor(rpc, address) {
      this.rpc = rpc;
      this.address = address.toLowerCase();
    }

    async chainId() {
      return BigInt(await this.rpc.request("eth_chainId", []));
    }

    async call(fn, args) {
      const data = IFACE.encodeFunctionData(fn, args);
      const out = await this.rpc.request("eth_call", [{ to: this.address, data }, "latest"]);
      if (out === "0x") throw new ChainError(`no ProvenanceLedger contract at ${this.address} on this chain (${fn} returned nothing)`);
      return IFACE.decodeFunctionResult(fn, out);
    }

    async findCheckpoint(size) {
      try {
        const [root, previousSize, blockNumber] = await this.call("checkpoint", [size]);
        return { size: BigInt(size), root: root.toLowerCase(), previousSize, blockNumber };
      } catch (exc) {
        if (exc instanceof Reverted && exc.errorName === "UnknownCheckpoint") return null;
        throw exc;
      }
    }

    async coveringCheckpoint(index, fromSize) {
      try {
        const [size, blockNumber] = await this.call("coveringCheckpoint", [index, fromSize]);
        return { size, blockNumber };
      } catch (exc) {
        if (exc instanceof Reverted && exc.errorName === "UnknownCheckpoint") throw new NotFound(`no checkpoint of size ${fromSize || "any"} on chain`);
        if (exc instanceof Reverted && exc.errorName === "IndexOutOfRange") throw new NotFound(`no anchored checkpoint covers leaf ${index} yet`);
        throw exc;
      }
    }

    async participantCall(fn, participant, args) {
      try {
        return (await this.call(fn, [participant, ...args]))[0];
      } catch (exc) {
        if (exc instanceof Reverted && exc.errorName === "UnknownParticipant") throw new NotFound(`no participant ${pyRepr(participant)}`);
        throw exc;
      }
    }

    // Why `address` could not sign for `participant` at `block` (ledger/chain/registry.py
    // `require_key`): the contract's isKeyValidAt said no.
    async whyNotKey(participant, address, block) {
      let info;
      try {
        info = await this.call("keyInfo", [address]);
      } catch (exc) {
        if (exc instanceof Reverted && exc.errorName === "UnknownKey") return `key ${address} is not registered on chain`;
        throw exc;
      }
      const [owner, validFrom, revokedFrom] = info;
      if (owner !== participant) return `key ${address} belongs to ${pyRepr(owner)}, not to ${pyRepr(participant)}`;
      if (!(validFrom <= block && (revokedFrom === 0n || block < revokedFrom))) {
        return `key ${address} of ${pyRepr(participant)} is valid over blocks [${validFrom}, ${revokedFrom === 0n ? "open" : revokedFrom}), not at block ${block}`;
      }
      return `${pyRepr(participant)} held no role at block ${block}`;
    }

    async anchorTx(size, block) {
      const logs = await this.rpc.request("eth_getLogs", [
        {
          address: this.address,
          fromBlock: E.toQuantity(block),
          toBlock: E.toQuantity(block),
          topics: [CHECKPOINT_TOPIC, E.zeroPadValue(E.toBeHex(size), 32)],
        },
      ]);
      if (!Array.isArray(logs) || logs.length === 0) throw new ChainError(`checkpoint ${size} is in storage at block ${block} without its event`);
      return logs[logs.length - 1].transactionHash.toLowerCase();
    }
  }

  // ledger/receipts.py `chain_key_source`: at the block of the first checkpoint that covered
  // the record, the signer was a valid key of its participant, with a role that may sign the
  // record's kind.
  async function keyCheck(chain, r) {
    const producer = r.record.producer;
    let first;
    try {
      first = await chain.coveringCheckpoint(r.leafIndex, r.size);
    } catch (exc) {
      if (!(exc instanceof NotFound)) throw exc;
      // The receipt's checkpoint is not (yet) on chain: ask from the latest one.
      try {
        first = await chain.coveringCheckpoint(r.leafIndex, 0n);
      } catch (exc2) {
        if (exc2 instanceof NotFound && r.anchor === null) {
          throw new NotYetAnchored(`${exc2.message}: the chain judges the key at the block of the first checkpoint that covers the record`);
        }
        throw exc2;
      }
    }
    const block = first.blockNumber;
    const valid = await chain.participantCall("isKeyValidAt", producer.participant, [producer.address, block]);
    if (!valid) throw new VerificationError(await chain.whyNotKey(producer.participant, producer.address, block));
    const roles = bitsToRoles(await chain.participantCall("rolesAt", producer.participant, [block]));
    if (roles.length === 0) throw new VerificationError(`${pyRepr(producer.participant)} held no role at block ${block}`);
    const allowed = rolesForKind(r.record.kind);
    if (!roles.some((x) => allowed.includes(x))) {
      throw new VerificationError(
        `${producer.participant} (${roles.sort().join(", ")}) may not sign ${r.record.kind} records; that takes one of ${allowed.join(", ")}`
      );
    }
    return `${producer.address} was a key of ${producer.participant} (${roles.sort().join(", ")}) at block ${block}, where checkpoint ${first.size} first covered the record`;
  }

  // ledger/receipts.py `chain_anchor_source` with ledger/chain `check_anchor`: this chain and
  // contract, (size, root) anchored, in the block and by the transaction the receipt claims.
  async function anchorCheck(chain, r) {
    const claims = r.anchor || {};
    if (r.anchor === null && (await chain.findCheckpoint(r.size)) === null) {
      throw new NotYetAnchored(`the receipt claims no anchor and the chain has none at size ${r.size} yet`);
    }
    const claimedChain = BigInt("chain_id" in claims ? claims.chain_id : r.domain.chainId);
    const nodeChain = await chain.chainId();
    if (claimedChain !== nodeChain) throw new VerificationError(`anchor names chain ${claimedChain}, this is chain ${nodeChain}`);
    const contract = "contract" in claims ? claims.contract : r.domain.verifyingContract;
    if (contract !== chain.address) throw new VerificationError(`anchor names contract ${contract}, this is ${chain.address}`);
    const cp = await chain.findCheckpoint(r.size);
    if (cp === null) throw new NotFound(`no checkpoint of size ${r.size} on chain`);
    if (cp.root !== r.root) throw new VerificationError(`chain anchors root ${cp.root} at size ${r.size}, expected ${r.root}`);
    const tx = await chain.anchorTx(r.size, cp.blockNumber);
    if ("block_number" in claims && BigInt(claims.block_number) !== cp.blockNumber) {
      throw new VerificationError(`checkpoint ${r.size} is anchored in block ${cp.blockNumber}, not ${claims.block_number}`);
    }
    if ("tx_hash" in claims && claims.tx_hash.toLowerCase() !== tx) {
      throw new VerificationError(`checkpoint ${r.size} was anchored by ${tx}, not ${claims.tx_hash}`);
    }
    return `root anchored at size ${r.size} on chain ${nodeChain} in block ${cp.blockNumber} (tx ${tx})`;
  }

  // ------------------------------------------------------------------------ one receipt
  const NEEDS_CHAIN_KEY =
    "needs the chain: whether the signer was a key of its participant, allowed to sign this kind of record, when the record was first anchored";
  const NEEDS_LOG = "needs the log: whether its root at this size is this root";
  const NEEDS_CHAIN_ANCHOR = "needs the chain: whether this size and root are anchored (until then the tree size and root are the receipt's word)";

  function verdictOf(checks) {
    const failed = checks.some((c) => c.status === "failed");
    const ran = new Set(checks.filter((c) => c.status === "ok").map((c) => c.name));
    return { ok: !failed && ESSENTIAL.every((n) => ran.has(n)), checks };
  }
  const check = (name, status, detail) => ({ name, status, detail });

  // Everything that needs nothing but the receipt: the checks in Python's order, with
  // placeholders where the chain's go (filled by `chainChecks`).
  function offlineChecks(data, opts) {
    const checks = [];
    if (!isObject(data)) return { checks: [check("format", "failed", "a receipt is a JSON object")] };
    if (data.format !== FORMAT) {
      return { checks: [check("format", "failed", `format is ${cut(pyRepr(data.format), 80)}, expected '${FORMAT}'`)] };
    }
    const bad = problem(RECEIPT_SCHEMA, { receipt: data }, "receipt", []);
    if (bad) return { checks: [check("format", "failed", bad)] };
    const record = data.record;
    const invalid = recordProblem(record);
    if (invalid) return { checks: [check("format", "failed", `not a valid record: ${invalid}`)] };
    let canonical;
    try {
      canonical = utf8.encode(jcs(record));
    } catch (exc) {
      // ledger.receipts raises here (an InputError out of verify_receipt): the record is not
      // one the log could ever have taken, so the receipt is refused as malformed.
      return { checks: [check("format", "failed", `not a valid record: payload cannot be canonicalised: ${exc.message}`)] };
    }
    if (canonical.length > MAX_RECORD_BYTES) {
      return {
        checks: [check("format", "failed", `not a valid record: record is ${canonical.length} bytes as canonical JSON, at most ${MAX_RECORD_BYTES}`)],
      };
    }
    checks.push(check("format", "ok", FORMAT));

    const r = {
      record,
      domain: data.domain,
      leafIndex: BigInt(data.leaf_index),
      size: BigInt(data.checkpoint.size),
      root: data.checkpoint.root,
      anchor: data.anchor,
    };
    const expected = opts.expectedDomain;
    if (expected && !sameJson(expected, data.domain)) {
      checks.push(check("domain", "failed", `receipt is for ${JSON.stringify(data.domain)}, expected ${JSON.stringify(expected)}`));
    }

    const dataHash = sha256(canonical);
    const leaf = hashLeaf(dataHash);
    const leafHex = bytesToHex(leaf);
    if (leafHex === data.leaf_hash) checks.push(check("canonical", "ok", `leaf hash ${leafHex}`));
    else checks.push(check("canonical", "failed", `record hashes to leaf ${leafHex}, receipt says ${data.leaf_hash}`));

    try {
      const signer = recoverDigest(recordDigest(data.domain, record, dataHash), data.signature);
      if (signer !== record.producer.address) {
        throw new VerificationError(`signature was made by ${signer}, record claims producer ${record.producer.address}`);
      }
      checks.push(check("signature", "ok", `EIP-712 signature by ${record.producer.address}`));
    } catch (exc) {
      checks.push(check("signature", "failed", exc.message));
    }

    const chained = Boolean(opts.rpc);
    checks.push(chained ? check(KEY_CHECK, "pending", "") : check(KEY_CHECK, "skipped", NEEDS_CHAIN_KEY));

    try {
      const got = rootFromInclusionProof(leaf, r.leafIndex, r.size, data.inclusion_proof.map(hexToBytes));
      if (!equalBytes(got, hexToBytes(r.root))) {
        throw new VerificationError(`inclusion proof leads to root ${bytesToHex(got).slice(2)}, expected ${r.root.slice(2)}`);
      }
      let detail = `leaf ${r.leafIndex} in tree of size ${r.size}`;
      if (!chained) {
        // A proof fits more than one size: without the anchor, size and root are a claim.
        detail += " (size and root as the receipt claims them: only the anchor check authenticates them)";
      }
      checks.push(check("inclusion", "ok", detail));
    } catch (exc) {
      checks.push(check("inclusion", "failed", exc.message));
    }

    checks.push(check("checkpoint", "skipped", NEEDS_LOG));
    checks.push(chained ? check("anchor", "pending", "") : check("anchor", "skipped", NEEDS_CHAIN_ANCHOR));
    return { checks, parsed: r };
  }

  async function runChainCheck(fn) {
    try {
      return ["ok", await fn()];
    } catch (exc) {
      if (exc instanceof NotYetAnchored) return ["skipped", exc.message];
      return ["failed", exc.message || String(exc)];
    }
  }

  async function chainChecks(result, opts) {
    const pending = result.checks.filter((c) => c.status === "pending");
    if (!pending.length) return;
    const rpc = opts._rpc || new Rpc(opts.rpc);
    const chain = new Chain(rpc, result.parsed.domain.verifyingContract);
    const [key, anchor] = await Promise.all([runChainCheck(() => keyCheck(chain, result.parsed)), runChainCheck(() => anchorCheck(chain, result.parsed))]);
    for (const c of pending) [c.status, c.detail] = c.name === KEY_CHECK ? key : anchor;
  }

  function readInput(input) {
    return typeof input === "string" ? parseStrict(input) : input;
  }

  /** Run every check on one receipt (JSON text or a parsed object); each reported by name. */
  async function verifyReceipt(input, opts = {}) {
    let data;
    try {
      data = readInput(input);
    } catch (exc) {
      if (!(exc instanceof LedgerError)) throw exc;
      return verdictOf([check("format", "failed", exc.message)]);
    }
    const result = offlineChecks(data, opts);
    if (result.parsed) await chainChecks(result, opts);
    return verdictOf(result.checks);
  }

  // Equality as Python's == on decoded JSON: numbers by value (1 == 1.0), keys unordered.
  function sameJson(a, b) {
    if ((typeof a === "number" || typeof a === "bigint") && (typeof b === "number" || typeof b === "bigint")) {
      return Number.isInteger(Number(a)) && Number.isInteger(Number(b)) ? BigInt(a) === BigInt(b) : Number(a) === Number(b);
    }
    if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return a === b;
    if (Array.isArray(a) !== Array.isArray(b)) return false;
    const ka = Object.keys(a);
    if (ka.length !== Object.keys(b).length) return false;
    return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && sameJson(a[k], b[k]));
  }

  // ------------------------------------------------------------------- the auditor's export
  /** Check an auditor's export (forgeproof-epcis-audit/1): every receipt, that each rests on
   * a checkpoint the bundle lists and is of the bundle's deployment, and that whoever the
   * bundle says asserted an event signed its record. What only ledger.epcis.audit
   * `verify_audit` computes (CBV 2.0 event hash IDs, the genealogy's edges) is reported as
   * skipped. */
  async function verifyExport(input, opts = {}) {
    let bundle;
    try {
      bundle = readInput(input);
    } catch (exc) {
      if (!(exc instanceof LedgerError)) throw exc;
      return { ok: false, checks: [check("format", "failed", exc.message)], receipts: [] };
    }
    const checks = [];
    if (!isObject(bundle) || bundle.format !== AUDIT_FORMAT) {
      checks.push(check("format", "failed", `not a ${AUDIT_FORMAT} bundle`));
      return { ok: false, checks, receipts: [] };
    }
    checks.push(check("format", "ok", AUDIT_FORMAT));
    const events = Array.isArray(bundle.events) ? bundle.events : [];
    const listed = (Array.isArray(bundle.checkpoints) ? bundle.checkpoints : []).filter(isObject);
    const run = { ...opts, _rpc: opts._rpc || (opts.rpc ? new Rpc(opts.rpc) : undefined) };
    const receipts = [];
    const problems = { checkpoints: [], domain: [], asserted: [], records: [] };

    for (const item of events) {
      const leaf = isObject(item) ? item.leaf_index : undefined;
      const label = `event at leaf ${pyRepr(leaf)}`;
      if (!isObject(item)) {
        problems.records.push(`${label}: not an object`);
        continue;
      }
      const pairs = [["receipt", item.receipt]];
      if (Object.prototype.hasOwnProperty.call(item, "error_declaration")) pairs.push(["error_declaration", item.error_declaration]);
      for (const [role, receipt] of pairs) {
        const result = offlineChecks(receipt, run);
        if (result.parsed) await chainChecks(result, run);
        const verdict = verdictOf(result.checks);
        receipts.push({ label: role === "receipt" ? label : `${label}: its error declaration`, role, leaf_index: plain(leaf), ...verdict });
        if (!isObject(receipt)) continue;
        const cp = isObject(receipt.checkpoint) ? receipt.checkpoint : {};
        if (!listed.some((c) => sameJson(c.size, cp.size) && c.root === cp.root)) problems.checkpoints.push(`${label}: ${role} rests on an unlisted checkpoint`);
        if (!sameJson(receipt.domain, bundle.domain)) problems.domain.push(`${label}: ${role} is from another deployment`);
      }
      const record = isObject(item.receipt) && isObject(item.receipt.record) ? item.receipt.record : null;
      if (record === null) {
        problems.records.push(`${label}: no record`);
        continue;
      }
      if (record.kind !== "epcis_event") problems.records.push(`${label}: record kind is ${pyRepr(record.kind)}, expected 'epcis_event'`);
      if (!sameJson(item.receipt.leaf_index, leaf)) problems.records.push(`${label}: the receipt is for another leaf`);
      const signer = isObject(record.producer) ? record.producer.participant : undefined;
      const said = isObject(item.summary) ? item.summary.asserted_by : undefined;
      if (said !== undefined && said !== null && said !== signer) {
        problems.asserted.push(`${label}: the bundle says ${said} asserted it, its record is ${signer}'s`);
      }
    }

    const failing = receipts.filter((x) => !x.ok);
    if (!events.length) checks.push(check("receipts", "failed", "the bundle holds no events"));
    else if (failing.length) {
      const names = failing.map((x) => `${x.label}: ${failedNames(x)}`);
      checks.push(check("receipts", "failed", `${failing.length} of ${receipts.length} receipts do not verify (${names.join("; ")})`));
    } else checks.push(check("receipts", "ok", `all ${receipts.length} receipts verify (${events.length} events)`));
    const verdictFor = (name, list, okText) => checks.push(list.length ? check(name, "failed", list.join("; ")) : check(name, "ok", okText));
    verdictFor("checkpoints", problems.checkpoints, `every receipt rests on a checkpoint the bundle lists (${listed.map((c) => `size ${c.size}`).join(", ") || "none"})`);
    verdictFor("domain", problems.domain, "every receipt is of the bundle's deployment");
    verdictFor("event records", problems.records, "every event is an epcis_event record at its leaf");
    verdictFor("asserted by", problems.asserted, "every event was asserted by the participant whose key signed its record");
    checks.push(check("event IDs", "skipped", "the CBV 2.0 hash ID of each event is recomputed by the Python verifier (ledger.epcis.audit verify_audit), not in the browser"));
    checks.push(check("genealogy", "skipped", "whether each edge of the drawn genealogy follows from its events is checked by verify_audit, not in the browser"));
    const ok = events.length > 0 && !checks.some((c) => c.status === "failed");
    return { ok, checks, receipts };
  }

  // --------------------------------------------------------------------------- any input
  function unwrap(v) {
    // The API's receipt response, {"status": ..., "receipt": {...}}, or a verify request.
    if (isObject(v) && !Object.prototype.hasOwnProperty.call(v, "format") && Object.prototype.hasOwnProperty.call(v, "receipt")) {
      return { receipt: v.receipt, status: v.status };
    }
    return { receipt: v, status: undefined };
  }

  // A JSON value as the page shows it: BigInt does not cross structured cloning everywhere.
  const plain = (v) => (typeof v === "bigint" ? String(v) : v);

  function describe(receipt) {
    if (!isObject(receipt) || !isObject(receipt.record)) return {};
    const rec = receipt.record;
    return {
      leaf_index: plain(receipt.leaf_index),
      kind: rec.kind,
      participant: isObject(rec.producer) ? rec.producer.participant : undefined,
    };
  }

  const failedNames = (v) =>
    v.checks
      .filter((c) => c.status === "failed")
      .map((c) => c.name)
      .join(", ") || "an essential check did not run";

  /** Verify whatever was dropped or pasted: a receipt, the API's receipt response, a list of
   * receipts, or an auditor's export. */
  async function verifyAny(text, opts = {}) {
    let data;
    try {
      data = parseStrict(text);
    } catch (exc) {
      if (!(exc instanceof LedgerError)) throw exc;
      const receipts = [{ label: "input", ...verdictOf([check("format", "failed", exc.message)]) }];
      return { kind: "receipt", ok: false, checks: [], receipts, summary: `does not verify: ${exc.message}` };
    }
    const run = { ...opts, _rpc: opts.rpc ? new Rpc(opts.rpc) : undefined };
    if (isObject(data) && data.format === AUDIT_FORMAT) {
      const result = await verifyExport(data, run);
      const good = result.receipts.filter((x) => x.ok).length;
      const summary = result.ok
        ? `export verifies: ${good} of ${result.receipts.length} receipts hold, and the bundle's own checks`
        : `export does NOT verify: ${result.checks.filter((c) => c.status === "failed").map((c) => c.name).join(", ")}`;
      return { kind: "export", ...result, summary };
    }
    const list = Array.isArray(data) ? data : [data];
    const receipts = [];
    for (let j = 0; j < list.length; j++) {
      const { receipt, status } = unwrap(list[j]);
      const label = list.length > 1 ? `receipt ${j + 1}` : "receipt";
      if (receipt === null && status !== undefined) {
        receipts.push({
          label,
          ...verdictOf([check("format", "failed", `no receipt yet: the record is ${pyRepr(status)} (no checkpoint covers it yet)`)]),
        });
        continue;
      }
      const result = offlineChecks(receipt, run);
      if (result.parsed) await chainChecks(result, run);
      receipts.push({ label, status, ...describe(receipt), ...verdictOf(result.checks) });
    }
    const good = receipts.filter((x) => x.ok).length;
    const ok = receipts.length > 0 && good === receipts.length;
    const checks = receipts.length ? [] : [check("input", "failed", "an empty list: nothing to verify")];
    const skipped = [...new Set(receipts.flatMap((x) => x.checks.filter((c) => c.status === "skipped").map((c) => c.name)))];
    let summary = ok
      ? receipts.length === 1
        ? "receipt verified"
        : `all ${receipts.length} receipts verified`
      : receipts.length === 1
        ? `receipt does NOT verify: ${failedNames(receipts[0])}`
        : `${receipts.length - good} of ${receipts.length} receipts do NOT verify`;
    if (ok && skipped.length) summary += ` (not checked: ${skipped.join(", ")})`;
    return { kind: Array.isArray(data) ? "receipts" : "receipt", ok, checks, receipts, summary };
  }

  root.ForgeproofVerify = {
    FORMAT,
    AUDIT_FORMAT,
    verifyReceipt,
    verifyExport,
    verifyAny,
    parseStrict,
    canonicalJson: jcs,
  };
})(typeof window !== "undefined" ? window : globalThis);
