// Runs the vectors written by test_proof_js.py through proof-core.mjs and prints the outcomes as
// JSON on stdout; the pytest side decides what is right.
//
//   node proof_vectors.mjs <path of proof-core.mjs> <path of vectors.json>
//
// vectors.json: {"cases": [{"name", "data"}],           -> verifyAll(data) per case
//                "paths": [{"index", "size", "leaf", "hashes"}],  -> rootFromInclusionPath (base64)
//                "key_ids": [{"name", "x"}],             -> noteKeyId (hex)
//                "unsupported": <data>}                  -> verifyAll without Ed25519 / without subtle

import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';

const [corePath, vectorsPath] = process.argv.slice(2);
const core = await import(pathToFileURL(corePath).href);
const vectors = JSON.parse(await readFile(vectorsPath, 'utf8'));
const subtle = globalThis.crypto.subtle;

const cases = {};
for (const { name, data } of vectors.cases) {
  cases[name] = await core.verifyAll(data);
}

const paths = [];
for (const { index, size, leaf, hashes } of vectors.paths) {
  try {
    const root = await core.rootFromInclusionPath(
      index,
      size,
      core.decodeBase64(leaf),
      hashes.map((hash) => core.decodeBase64(hash)),
    );
    paths.push(core.encodeBase64(root));
  } catch (error) {
    paths.push(`error: ${error.message}`);
  }
}

const keyIds = [];
for (const { name, x } of vectors.key_ids) {
  keyIds.push(core.toHex(await core.noteKeyId(name, core.decodeBase64Url(x))));
}

// A WebCrypto that hashes but knows no Ed25519, as in browsers before Ed25519 shipped.
const noEd25519 = {
  digest: (algorithm, data) => subtle.digest(algorithm, data),
  importKey: async () => {
    throw new DOMException('Algorithm: Unrecognized name', 'NotSupportedError');
  },
  verify: async () => {
    throw new DOMException('Algorithm: Unrecognized name', 'NotSupportedError');
  },
};

const output = {
  node: process.version,
  ed25519: (await core.ed25519Algorithm())?.name ?? null,
  cases,
  paths,
  key_ids: keyIds,
  unsupported: {
    no_ed25519: await core.verifyAll(vectors.unsupported, { subtle: noEd25519 }),
    no_subtle: await core.verifyAll(vectors.unsupported, { subtle: undefined }),
  },
};
process.stdout.write(JSON.stringify(output));
