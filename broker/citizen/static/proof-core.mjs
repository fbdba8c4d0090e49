// Checking the broker's provenance-log proofs with WebCrypto, free of any DOM access.
//
// Shared by the citizen's data cockpit (through proof.js, in the browser) and by the vector
// tests (tests/citizen/proof_vectors.mjs, in Node >= 20). Everything runs on crypto.subtle:
// SHA-256 for the Merkle path and Ed25519 for the checkpoint signature; no libraries.
//
// What is checked, mirroring broker/audit/merkle.py and broker/audit/note.py:
//
// * The checkpoint is a C2SP signed note (https://c2sp.org/signed-note) whose body is a
//   tlog checkpoint (https://c2sp.org/tlog-checkpoint): origin line, tree size line, standard
//   base64 root hash line, optional extension lines. The body runs up to and including the
//   newline before the last blank line; each following line is `— <key name> <base64(4-byte
//   key id || 64-byte Ed25519 signature)>`. Lines from keys not given are ignored; a line whose
//   key name and key id match a given key must verify over the UTF-8 body, and at least one
//   such line must exist. The key id is SHA-256(key name || "\n" || 0x01 || public key)[:4].
//   The broker names its checkpoint key after its origin, so the checkpoint's origin line must
//   be the name of a key that signed it.
// * Each entry's leaf hash is SHA-256(0x00 || entry bytes); the inclusion path is folded as in
//   RFC 9162 §2.1.3.2 (node = SHA-256(0x01 || left || right)) and must end exactly at the
//   checkpoint's root, for a tree of exactly the checkpoint's size.
//
// Input (the page embeds it as JSON, see proof.js):
//
//   {
//     "checkpoint": "<the full signed note text, signature lines included>",
//     "keys": [{"kty": "OKP", "crv": "Ed25519", "x": "<base64url public key>",
//               "kid": "<JWKS kid>", "name": "<note key name>"}, ...],
//     "entries": [{"mark": "<element id>", "index": <int>, "tree_size": <int>,
//                  "entry": "<standard base64 of the entry's exact bytes>",
//                  "hashes": ["<standard base64 of a 32-byte hash>", ...]}, ...]
//   }
//
// "keys" takes the checkpoint keys of the JWKS at /.well-known/broker-keys as they are, plus
// "name". Other JWKS members (use, alg, status) are ignored; keys that are not OKP/Ed25519, or
// that carry a "purpose" (the broker's request-signing key), are skipped. Without "name" a key
// is named after the checkpoint's origin line, which is how the broker names its key. All base64
// must be canonical (standard alphabet with padding, resp. base64url without padding for "x").
//
// Output of verifyAll(): one result per entry, in order:
//   {mark, status: "ok" | "bad" | "unsupported", code, reason, detail}
// where code is null for "ok", else a key of REASONS; reason is the German text of the code and
// detail an English explanation for developers.

const HASH_SIZE = 32;
const KEY_ID_SIZE = 4;
const SIGNATURE_SIZE = 64;
const ED25519_TYPE = 0x01;
const LEAF_PREFIX = 0x00;
const NODE_PREFIX = 0x01;
const MAX_SIGNATURES = 100;
const MAX_TREE_SIZE = 2n ** 64n - 1n;
const SIGNATURE_PREFIX = '\u2014 '; // em dash, space

export const REASONS = Object.freeze({
  'checkpoint-malformed': 'Der signierte Prüfpunkt des Logs ist fehlerhaft.',
  'checkpoint-forged': 'Die Signatur des Prüfpunkts ist ungültig.',
  'checkpoint-unsigned': 'Der Prüfpunkt ist von keinem Schlüssel des Brokers signiert.',
  'origin-mismatch': 'Der Prüfpunkt gehört nicht zum Log dieses Brokers.',
  'entry-malformed': 'Eintrag oder Inklusionsbeweis ist fehlerhaft kodiert.',
  'tree-size': 'Der Inklusionsbeweis gilt für eine andere Loggröße als der Prüfpunkt.',
  'root-mismatch': 'Der Inklusionsbeweis führt nicht zur signierten Wurzel des Logs.',
  'data-missing': 'Für diesen Eintrag fehlen die Prüfdaten.',
  unsupported: 'Dieser Browser kann Ed25519-Signaturen nicht prüfen.',
  error: 'Bei der Prüfung ist ein unerwarteter Fehler aufgetreten.',
});

/** A check failed; `code` is a key of REASONS. */
export class ProofFailure extends Error {
  constructor(code, detail) {
    super(detail || code);
    this.name = 'ProofFailure';
    this.code = code;
  }
}

/** WebCrypto (or its Ed25519) is not available here; nothing can be said either way. */
export class Unsupported extends Error {
  constructor(detail) {
    super(detail || 'WebCrypto Ed25519 is not available');
    this.name = 'Unsupported';
  }
}

// RFC 8032 §7.1, test 1: the empty message signed by this key. Verifying it tells a browser that
// really implements Ed25519 from one that merely knows the name.
const PROBE_JWK = Object.freeze({ kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo' });
const PROBE_SIGNATURE =
  '5VZDAMNgrHKQhuLMgG6CioSHfx645dl02HPgZSJJAVVfuIIVkKM7rMYeOXAc+bRr0lv18FlbviRlUUFDjnoQCw==';

// The WebCrypto name first; Node before 18.4 only knew its vendor name.
const ED25519_ALGORITHMS = Object.freeze([
  Object.freeze({ name: 'Ed25519' }),
  Object.freeze({ name: 'NODE-ED25519', namedCurve: 'NODE-ED25519' }),
]);

const encoder = new TextEncoder();

export function utf8(text) {
  return encoder.encode(text);
}

export function concatBytes(...parts) {
  const out = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export function bytesEqual(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 1) {
    if (a[i] !== b[i]) return false;
  }
  return true;
}

export function toHex(bytes) {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

function bytesToBinary(bytes) {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return binary;
}

export function encodeBase64(bytes) {
  return btoa(bytesToBinary(bytes));
}

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const BASE64URL_RE = /^[A-Za-z0-9_-]*$/;

/**
 * Standard base64 (with padding) to bytes, or null unless `text` is the one canonical spelling
 * of its bytes (as broker/audit/note.py insists), so no two encodings of a value both pass.
 */
export function decodeBase64(text) {
  if (typeof text !== 'string' || !BASE64_RE.test(text)) return null;
  const binary = atob(text);
  const bytes = Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
  return encodeBase64(bytes) === text ? bytes : null;
}

/** Unpadded base64url (RFC 7515 §2, as in JWK members) to bytes, or null if not canonical. */
export function decodeBase64Url(text) {
  if (typeof text !== 'string' || !BASE64URL_RE.test(text) || text.length % 4 === 1) return null;
  const standard = text.replace(/-/g, '+').replace(/_/g, '/');
  const bytes = decodeBase64(standard + '='.repeat((4 - (standard.length % 4)) % 4));
  return bytes;
}

function subtleOrThrow(subtle) {
  if (!subtle) throw new Unsupported('crypto.subtle is not available (WebCrypto needs a secure context)');
  return subtle;
}

export async function sha256(bytes, subtle = globalThis.crypto?.subtle) {
  return new Uint8Array(await subtleOrThrow(subtle).digest('SHA-256', bytes));
}

export function leafHash(entry, subtle = globalThis.crypto?.subtle) {
  return sha256(concatBytes(Uint8Array.of(LEAF_PREFIX), entry), subtle);
}

export function nodeHash(left, right, subtle = globalThis.crypto?.subtle) {
  return sha256(concatBytes(Uint8Array.of(NODE_PREFIX), left, right), subtle);
}

/**
 * The root that `path` (leaf side first) leads to from leaf hash `leaf` at `index` in a tree of
 * `size` leaves: RFC 9162 §2.1.3.2 step by step. Throws a ProofFailure when the path has the
 * wrong length for (index, size). BigInt keeps the shifts exact beyond 32 bits.
 */
export async function rootFromInclusionPath(index, size, leaf, path, subtle = globalThis.crypto?.subtle) {
  let fn = BigInt(index);
  let sn = BigInt(size) - 1n;
  if (fn < 0n || fn > sn) throw new ProofFailure('entry-malformed', `leaf index ${index} is not in a tree of size ${size}`);
  let r = leaf;
  for (const p of path) {
    if (sn === 0n) throw new ProofFailure('root-mismatch', 'the inclusion path is longer than the tree is deep');
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r, subtle);
      // Skip the levels where this node is an unpaired right-edge node, promoted unchanged.
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p, subtle);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new ProofFailure('root-mismatch', 'the inclusion path is shorter than the tree is deep');
  return r;
}

function checkKeyName(name) {
  return typeof name === 'string' && name.length > 0 && !/[\s+\u0000-\u001f]/u.test(name);
}

/** Split a signed note into body and (unverified) signature lines; ProofFailure if malformed. */
export function parseNote(text) {
  const malformed = (detail) => new ProofFailure('checkpoint-malformed', detail);
  if (typeof text !== 'string' || text.length === 0) throw malformed('there is no checkpoint');
  if (/[\u0000-\u0009\u000b-\u001f]/.test(text)) throw malformed('the note contains control characters');
  // Bodies may contain blank lines; signature lines never do, so the last one separates them.
  const split = text.lastIndexOf('\n\n');
  if (split < 0) throw malformed('the note has no blank line before its signatures');
  const body = text.slice(0, split + 1);
  const block = text.slice(split + 2);
  if (!block) throw malformed('the note has no signature lines');
  if (!block.endsWith('\n')) throw malformed('the note does not end with a newline');
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) throw malformed(`the note has more than ${MAX_SIGNATURES} signatures`);
  const signatures = lines.map((line) => {
    if (!line.startsWith(SIGNATURE_PREFIX)) throw malformed('a signature line does not start with an em dash');
    const rest = line.slice(SIGNATURE_PREFIX.length);
    const space = rest.indexOf(' ');
    const name = rest.slice(0, space);
    const encoded = rest.slice(space + 1);
    if (space < 0 || encoded.includes(' ') || !checkKeyName(name)) throw malformed('a signature line is malformed');
    const raw = decodeBase64(encoded);
    if (raw === null || raw.length <= KEY_ID_SIZE) throw malformed(`the signature by ${name} is not valid base64`);
    return { name, keyId: raw.slice(0, KEY_ID_SIZE), signature: raw.slice(KEY_ID_SIZE) };
  });
  return { body, signatures };
}

/** Parse a checkpoint body into {origin, size (BigInt), root, extensions}. */
export function parseCheckpoint(body) {
  const malformed = (detail) => new ProofFailure('checkpoint-malformed', detail);
  if (!body.endsWith('\n')) throw malformed('the checkpoint body does not end with a newline');
  const lines = body.slice(0, -1).split('\n');
  if (lines.length < 3) throw malformed(`the checkpoint body has ${lines.length} lines, needs at least 3`);
  const [origin, sizeText, rootText, ...extensions] = lines;
  if (!origin || extensions.some((line) => !line)) throw malformed('the checkpoint has an empty line');
  if (!/^(?:0|[1-9][0-9]*)$/.test(sizeText)) throw malformed('the tree size is not a canonical decimal');
  const size = BigInt(sizeText);
  if (size > MAX_TREE_SIZE) throw malformed('the tree size is out of range');
  const root = decodeBase64(rootText);
  if (root === null || root.length !== HASH_SIZE) throw malformed('the root hash is not 32 bytes of base64');
  return { origin, size, root, extensions };
}

/** The 4-byte note key id: SHA-256(name || "\n" || 0x01 || public key)[:4]. */
export async function noteKeyId(name, publicKey, subtle = globalThis.crypto?.subtle) {
  const digest = await sha256(concatBytes(utf8(`${name}\n`), Uint8Array.of(ED25519_TYPE), publicKey), subtle);
  return digest.slice(0, KEY_ID_SIZE);
}

/**
 * The Ed25519 algorithm this WebCrypto implements, or null: imports the RFC 8032 test key and
 * verifies its test signature, under each known algorithm name.
 */
export async function ed25519Algorithm(subtle = globalThis.crypto?.subtle) {
  if (!subtle) return null;
  const signature = decodeBase64(PROBE_SIGNATURE);
  for (const algorithm of ED25519_ALGORITHMS) {
    try {
      const key = await subtle.importKey('jwk', PROBE_JWK, algorithm, false, ['verify']);
      if (await subtle.verify({ name: algorithm.name }, key, signature, new Uint8Array(0))) return algorithm;
    } catch {
      // Not this name; try the next.
    }
  }
  return null;
}

/** Import the usable checkpoint keys of `jwks` as {name, keyId, key}; unusable ones are skipped. */
export async function importCheckpointKeys(jwks, defaultName, algorithm, subtle = globalThis.crypto?.subtle) {
  const keys = [];
  for (const jwk of Array.isArray(jwks) ? jwks : []) {
    if (jwk === null || typeof jwk !== 'object' || jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519') continue;
    if (jwk.purpose !== undefined) continue;
    const name = jwk.name === undefined ? defaultName : jwk.name;
    const raw = decodeBase64Url(jwk.x);
    if (!checkKeyName(name) || raw === null || raw.length !== 32) continue;
    try {
      // Only the members the key is made of: "alg": "EdDSA" or "use" trip some implementations.
      const key = await subtle.importKey('jwk', { kty: 'OKP', crv: 'Ed25519', x: jwk.x }, algorithm, false, [
        'verify',
      ]);
      keys.push({ name, keyId: await noteKeyId(name, raw, subtle), key });
    } catch {
      // A key this implementation rejects cannot have signed anything we could check.
    }
  }
  return keys;
}

/**
 * Verify the signed checkpoint `note` against `jwks`; return {origin, size, root, signers}.
 * Throws Unsupported when Ed25519 cannot be checked here, ProofFailure when the note fails.
 */
export async function verifyCheckpoint(note, jwks, subtle = globalThis.crypto?.subtle) {
  const algorithm = await ed25519Algorithm(subtle);
  if (algorithm === null) throw new Unsupported();
  const { body, signatures } = parseNote(note);
  const checkpoint = parseCheckpoint(body);
  const keys = await importCheckpointKeys(jwks, checkpoint.origin, algorithm, subtle);
  const message = utf8(body);
  const signers = [];
  for (const line of signatures) {
    const candidates = keys.filter((key) => key.name === line.name && bytesEqual(key.keyId, line.keyId));
    if (candidates.length === 0) continue; // a cosigner or witness we were not asked about
    let verified = false;
    if (line.signature.length === SIGNATURE_SIZE) {
      for (const { key } of candidates) {
        try {
          verified = await subtle.verify({ name: algorithm.name }, key, line.signature, message);
        } catch {
          verified = false;
        }
        if (verified) break;
      }
    }
    if (!verified) {
      throw new ProofFailure('checkpoint-forged', `the signature by ${line.name}+${toHex(line.keyId)} does not verify`);
    }
    if (!signers.includes(line.name)) signers.push(line.name);
  }
  if (signers.length === 0) throw new ProofFailure('checkpoint-unsigned', 'no signature line is from a given key');
  if (!signers.includes(checkpoint.origin)) {
    throw new ProofFailure('origin-mismatch', `the origin ${checkpoint.origin} is not the name of a key that signed`);
  }
  return { ...checkpoint, signers };
}

/** Check one entry's inclusion proof against a checkpoint returned by verifyCheckpoint(). */
export async function verifyEntry(checkpoint, entry, subtle = globalThis.crypto?.subtle) {
  const malformed = (detail) => new ProofFailure('entry-malformed', detail);
  if (entry === null || typeof entry !== 'object') throw malformed('the entry is not an object');
  const { index, tree_size: treeSize, hashes } = entry;
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(treeSize) || index < 0 || index >= treeSize) {
    throw malformed('index and tree_size must be integers with 0 <= index < tree_size');
  }
  if (BigInt(treeSize) !== checkpoint.size) {
    throw new ProofFailure('tree-size', `the proof is for tree size ${treeSize}, the checkpoint for ${checkpoint.size}`);
  }
  const bytes = decodeBase64(entry.entry);
  if (bytes === null) throw malformed('the entry is not canonical base64');
  if (!Array.isArray(hashes)) throw malformed('hashes is not a list');
  const path = hashes.map((text, i) => {
    const hash = decodeBase64(text);
    if (hash === null || hash.length !== HASH_SIZE) throw malformed(`hashes[${i}] is not 32 bytes of base64`);
    return hash;
  });
  const root = await rootFromInclusionPath(index, treeSize, await leafHash(bytes, subtle), path, subtle);
  if (!bytesEqual(root, checkpoint.root)) throw new ProofFailure('root-mismatch', 'the path leads to another root');
}

function outcome(mark, error) {
  if (error === null) return { mark, status: 'ok', code: null, reason: '', detail: '' };
  if (error instanceof Unsupported) {
    return { mark, status: 'unsupported', code: 'unsupported', reason: REASONS.unsupported, detail: error.message };
  }
  const code = error instanceof ProofFailure && error.code in REASONS ? error.code : 'error';
  return { mark, status: 'bad', code, reason: REASONS[code], detail: String(error?.message ?? error) };
}

/**
 * Check every entry of the page data (see the top of this file); never throws. The checkpoint
 * is verified once; when it fails, every entry gets its outcome. `options.subtle` replaces
 * globalThis.crypto.subtle (tests).
 */
export async function verifyAll(data, options = {}) {
  // null, not undefined: undefined would make the parameter defaults below pick the global again.
  const subtle = ('subtle' in options ? options.subtle : globalThis.crypto?.subtle) ?? null;
  const entries = Array.isArray(data?.entries) ? data.entries : [];
  const marks = entries.map((entry) => (typeof entry?.mark === 'string' ? entry.mark : null));
  let checkpoint;
  try {
    checkpoint = await verifyCheckpoint(data?.checkpoint, data?.keys, subtle);
  } catch (error) {
    return marks.map((mark) => outcome(mark, error));
  }
  return Promise.all(
    entries.map(async (entry, i) => {
      try {
        await verifyEntry(checkpoint, entry, subtle);
        return outcome(marks[i], null);
      } catch (error) {
        return outcome(marks[i], error);
      }
    }),
  );
}
