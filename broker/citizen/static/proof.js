// The citizen's data cockpit: check in the browser that each listed entry is in the broker's
// signed provenance log, and say so next to it. An ES module; the checks live in proof-core.mjs.
//
// The page includes (CSP `script-src 'self'` is enough, no inline script, no handlers):
//
//   <script type="application/json" id="log-proofs">{...}</script>
//   <script type="module" src="/citizen/static/proof.js"></script>
//
// and the server must answer /citizen/static/proof.js and /citizen/static/proof-core.mjs with
// Content-Type `text/javascript; charset=utf-8` (browsers refuse module scripts of any other
// type). The JSON is the input documented at the top of proof-core.mjs:
//
//   {"checkpoint": "<signed note>", "keys": [<checkpoint JWKs with "kid" and "name">],
//    "entries": [{"mark": "<element id>", "index": 0, "tree_size": 7,
//                 "entry": "<base64 entry bytes>", "hashes": ["<base64 32-byte hash>", ...]}]}
//
// It must be embedded with "<", ">" and "&" escaped as \u003c, \u003e, \u0026, so that no
// "</script>" or "<!--" can end the block early; JSON.parse reads the escapes back.
//
// Each "mark" names the element that shows the result for its entry. The server renders it as
//   <span id="..." class="proof-pending" data-proof="pending">Prüfung im Browser …</span>
// and this script replaces its text and state with one of
//   ok           "✓ im Log bestätigt"                   class proof-ok          data-proof="ok"
//   bad          "✗ Prüfung fehlgeschlagen"             class proof-bad         data-proof="bad"
//   unsupported  "? Prüfung im Browser nicht möglich"   class proof-unsupported data-proof="unsupported"
// For bad and unsupported the German reason goes into the title attribute and its code (a key
// of REASONS in proof-core.mjs) into data-proof-reason. Any data-proof="pending" element left
// without a result (no entry for it, or unreadable JSON) becomes bad with code "data-missing".
// When one mark is named by several entries, bad beats unsupported beats ok.

import { REASONS, verifyAll } from './proof-core.mjs';

const DATA_ID = 'log-proofs';

const TEXT = Object.freeze({
  ok: '✓ im Log bestätigt',
  bad: '✗ Prüfung fehlgeschlagen',
  unsupported: '? Prüfung im Browser nicht möglich',
});

const RANK = Object.freeze({ ok: 0, unsupported: 1, bad: 2 });

const STATE_CLASSES = Object.freeze(['proof-pending', 'proof-ok', 'proof-bad', 'proof-unsupported']);

/** The page's proof data: undefined without a data block, null when it is not valid JSON. */
export function readProofData(doc) {
  const block = doc.getElementById(DATA_ID);
  if (block === null) return undefined;
  try {
    return JSON.parse(block.textContent || '');
  } catch {
    return null;
  }
}

/** Show one result on its element: text, class, data-proof, and the reason for failures. */
export function showResult(element, result) {
  element.textContent = TEXT[result.status];
  element.classList.remove(...STATE_CLASSES);
  element.classList.add(`proof-${result.status}`);
  element.dataset.proof = result.status;
  if (result.status === 'ok') {
    element.removeAttribute('title');
    delete element.dataset.proofReason;
  } else {
    element.title = result.reason;
    element.dataset.proofReason = result.code;
  }
}

/** Check the page's proofs and show the outcomes; resolves to verifyAll()'s results. */
export async function run(doc = document, options = {}) {
  const data = readProofData(doc);
  if (data === undefined) return [];
  const results = data === null ? [] : await verifyAll(data, options);
  const worst = new Map();
  for (const result of results) {
    if (result.mark === null) continue;
    const known = worst.get(result.mark);
    if (known === undefined || RANK[result.status] > RANK[known.status]) worst.set(result.mark, result);
  }
  for (const [mark, result] of worst) {
    const element = doc.getElementById(mark);
    if (element !== null) showResult(element, result);
  }
  for (const element of doc.querySelectorAll('[data-proof="pending"]')) {
    showResult(element, { status: 'bad', code: 'data-missing', reason: REASONS['data-missing'] });
  }
  return results;
}

if (typeof document !== 'undefined') {
  run(document).catch((error) => {
    // verifyAll never throws; this is a bug in the page wiring, so leave no row pending.
    console.error('proof check failed', error);
    for (const element of document.querySelectorAll('[data-proof="pending"]')) {
      showResult(element, { status: 'bad', code: 'error', reason: REASONS.error });
    }
  });
}
