// An independent receipt verifier in JavaScript: ethers 6 for EIP-712, node:crypto for SHA-256,
// RFC 8785 written out from the RFC. Reads a JSON array of receipts on stdin; writes one JSON
// line per receipt: the signer ethers recovers with the receipt's domain as given, and whether
// the leaf hash and inclusion proof hold.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { verifyTypedData } from "ethers";

const sha256 = (...parts) => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
};
const hex = (b) => "0x" + Buffer.from(b).toString("hex");
const bytes = (h) => Buffer.from(h.slice(2), "hex");

// RFC 8785: ECMAScript number and string serialisation, keys sorted by UTF-16 code units.
function jcs(v) {
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  if (Array.isArray(v)) return "[" + v.map(jcs).join(",") + "]";
  return "{" + Object.keys(v).sort().map((k) => JSON.stringify(k) + ":" + jcs(v[k])).join(",") + "}";
}

// RFC 9162 section 2.1.3.2.
function rootFromProof(leaf, index, size, proof) {
  if (index >= size) throw new Error("index beyond size");
  let fn = BigInt(index), sn = BigInt(size) - 1n, r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new Error("proof too long");
    if ((fn & 1n) === 1n || fn === sn) {
      r = sha256(Buffer.from([1]), p, r);
      while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      r = sha256(Buffer.from([1]), r, p);
    }
    fn >>= 1n; sn >>= 1n;
  }
  if (sn !== 0n) throw new Error("proof too short");
  return r;
}

const RECORD = [
  { name: "kind", type: "string" },
  { name: "participant", type: "string" },
  { name: "createdAt", type: "string" },
  { name: "commitment", type: "bytes32" },
];

for (const receipt of JSON.parse(readFileSync(0, "utf8"))) {
  const out = { leaf_index: receipt.leaf_index };
  try {
    const record = receipt.record;
    const commitment = sha256(Buffer.from(jcs(record), "utf8"));
    const leaf = sha256(Buffer.from([0]), commitment);
    out.leaf_ok = hex(leaf) === receipt.leaf_hash;
    const message = {
      kind: record.kind,
      participant: record.producer.participant,
      createdAt: record.created_at,
      commitment: hex(commitment),
    };
    // The domain exactly as the receipt gives it: ethers types the fields it finds.
    out.recovered = verifyTypedData(receipt.domain, { Record: RECORD }, message, receipt.signature).toLowerCase();
    const root = rootFromProof(leaf, receipt.leaf_index, receipt.checkpoint.size, receipt.inclusion_proof.map(bytes));
    out.inclusion_ok = hex(root) === receipt.checkpoint.root;
  } catch (e) {
    out.error = String(e.message || e);
  }
  console.log(JSON.stringify(out));
}
