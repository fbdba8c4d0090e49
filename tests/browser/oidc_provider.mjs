// A real OpenID Provider for the browser tests: panva's certified oidc-provider, on loopback.
//
//   node tests/browser/oidc_provider.mjs --config CONFIG.json [--port PORT] [--host 127.0.0.1]
//
// PORT may also come from the environment (OIDC_PROVIDER_PORT); 0 (the default) lets the system
// pick a free port. The issuer is `http://HOST:PORT` with the port actually bound, announced as
// the single stdout line `READY http://HOST:PORT` once the provider answers. SIGTERM and SIGINT
// close the server and end the process with exit code 0.
//
// CONFIG.json:
//   {"clients": [{"client_id": "…", "client_secret": "…", "redirect_uris": ["…"],
//                 … any further client metadata, e.g. "token_endpoint_auth_method",
//                 "post_logout_redirect_uris"}],
//    "accounts": {"<login>": {"claims": {"family_name": "…", "given_name": "…",
//                                        "birthdate": "1964-08-12", "place_of_birth": "…",
//                                        "idnr": "…"},
//                             "acr": "http://eidas.europa.eu/LoA/substantial",
//                             "amr": ["pwd"]}}}
//   The subject (`sub`) is always the login name.
//
// What the provider does:
//   - authorization code flow only (response_type=code), PKCE required for every client (S256
//     only), `nonce` echoed in the ID token, `state` returned, `max_age` and `prompt=login`
//     force a new sign-in (oidc-provider's default interaction policy);
//   - scopes `openid profile`; `profile` releases family_name, given_name, birthdate,
//     place_of_birth and idnr, and they are put INTO THE ID TOKEN (conformIdTokenClaims: false),
//     so a relying party needs no userinfo call (the userinfo endpoint works as well);
//   - the ID token always carries `acr`, the account's eIDAS level of assurance (one of
//     ACR_VALUES below; clients default to default_acr_values: ACR_VALUES, so acr is always
//     requested; an `acr_values` parameter asking for another level does not change it), and
//     always `auth_time` (clients default to require_auth_time: true);
//   - consent is granted automatically: whatever scopes and claims the client asks for.
//
// The sign-in page a browser test drives (GET /interaction/<uid>; no consent screen follows):
//   input#login              (name="login")  the login name, a key of "accounts"
//   button#sign-in           (type=submit)   signs in and redirects back to the client
//   button#cancel            (type=submit)   ends the request with error=access_denied
//   [role=alert]#login-error                 shown (HTTP 200, same form) for an unknown login
// The sign-out confirmation (GET /session/end?…): button#logout-yes signs out,
// button#logout-no keeps the session.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const ACR_VALUES = [
  'http://eidas.europa.eu/LoA/low',
  'http://eidas.europa.eu/LoA/substantial',
  'http://eidas.europa.eu/LoA/high',
];
const PROFILE_CLAIMS = ['family_name', 'given_name', 'birthdate', 'place_of_birth', 'idnr'];

const { values: args } = parseArgs({
  options: {
    config: { type: 'string' },
    port: { type: 'string', default: process.env.OIDC_PROVIDER_PORT ?? '0' },
    host: { type: 'string', default: process.env.OIDC_PROVIDER_HOST ?? '127.0.0.1' },
  },
});
if (!args.config) {
  process.stderr.write('usage: node oidc_provider.mjs --config CONFIG.json [--port PORT]\n');
  process.exit(2);
}
const config = JSON.parse(readFileSync(args.config, 'utf8'));
const accounts = config.accounts ?? {};
for (const [login, account] of Object.entries(accounts)) {
  if (account.acr !== undefined && !ACR_VALUES.includes(account.acr)) {
    throw new Error(`account ${login}: acr ${account.acr} is not one of ${ACR_VALUES.join(', ')}`);
  }
}

const escapeHtml = (value) => String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const page = (title, body) => `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} – test OpenID Provider</title></head>
<body><main><h1>${escapeHtml(title)}</h1>
${body}
</main></body>
</html>`;

function findAccount(_ctx, id) {
  if (!Object.hasOwn(accounts, id)) {
    return undefined;
  }
  const claims = accounts[id].claims ?? {};
  return {
    accountId: id,
    // oidc-provider filters these by the granted scopes and claims.
    async claims() {
      return { ...claims, sub: id };
    },
  };
}

// Consent is not a step of these tests: the grant always covers what the client asks for.
async function grantEverythingRequested(provider, ctx) {
  const { oidc } = ctx;
  const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
  let grant = grantId ? await provider.Grant.find(grantId) : undefined;
  if (!grant) {
    grant = new provider.Grant({ accountId: oidc.session.accountId, clientId: oidc.client.clientId });
  }
  grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
  const requestedClaims = [
    ...Object.keys(oidc.claims?.id_token ?? {}),
    ...Object.keys(oidc.claims?.userinfo ?? {}),
  ];
  if (requestedClaims.length) {
    grant.addOIDCClaims(requestedClaims);
  }
  await grant.save();
  return grant;
}

function loginForm(uid, details, error) {
  const alert = error
    ? `<p role="alert" id="login-error">${escapeHtml(error)}</p>`
    : '';
  return page('Sign in', `${alert}
<p>Client <code>${escapeHtml(details.params.client_id)}</code> asks you to sign in.</p>
<form method="post" action="/interaction/${escapeHtml(uid)}" autocomplete="off">
  <label for="login">Login name</label>
  <input id="login" name="login" type="text" required autofocus>
  <button id="sign-in" type="submit" name="action" value="login">Sign in</button>
  <button id="cancel" type="submit" name="action" value="cancel" formnovalidate>Cancel</button>
</form>`);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) {
      throw new Error('form too large');
    }
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function sendHtml(res, status, html) {
  res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Cache-Control': 'no-store',
  });
  res.end(html);
}

async function interaction(provider, req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    sendHtml(res, 400, page('Error', '<p>This sign-in request is not the current one.</p>'));
    return;
  }
  if (details.prompt.name === 'consent') {
    // Only reached when loadExistingGrant did not cover the request (it always should).
    const grant = new provider.Grant({
      accountId: details.session.accountId,
      clientId: details.params.client_id,
    });
    const { missingOIDCScope, missingOIDCClaims } = details.prompt.details;
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
    await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, {
      mergeWithLastSubmission: true,
    });
    return;
  }
  if (req.method === 'GET') {
    sendHtml(res, 200, loginForm(uid, details));
    return;
  }
  const form = await readForm(req);
  if (form.get('action') === 'cancel') {
    await provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
    return;
  }
  const login = form.get('login') ?? '';
  if (!Object.hasOwn(accounts, login)) {
    sendHtml(res, 200, loginForm(uid, details, `Unknown login name “${login}”.`));
    return;
  }
  const account = accounts[login];
  await provider.interactionFinished(req, res, {
    login: {
      accountId: login,
      acr: account.acr ?? ACR_VALUES[1],
      amr: account.amr ?? ['pwd'],
      remember: true,
    },
  }, { mergeWithLastSubmission: false });
}

function buildProvider(issuer) {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'RS256' };
  const clients = (config.clients ?? []).map((client) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    require_auth_time: true,
    // Makes every authorization request ask for `acr`, so the ID token always carries it.
    default_acr_values: ACR_VALUES,
    ...client,
  }));

  const provider = new Provider(issuer, {
    clients,
    findAccount,
    jwks: { keys: [signingKey] },
    // Fixed test values: these cookies sign nothing that outlives the test run.
    cookies: {
      keys: ['broker-browser-tests-cookie-key-1'],
      // The broker runs on 127.0.0.1 too: cookies are not kept apart by port, so these names
      // must not clash with the broker's own.
      names: { session: 'op_session', interaction: 'op_interaction', resume: 'op_interaction_resume' },
    },
    responseTypes: ['code'],
    pkce: { required: () => true },
    scopes: ['openid', 'profile'],
    claims: {
      acr: null,
      auth_time: null,
      sid: null,
      iss: null,
      openid: ['sub'],
      profile: PROFILE_CLAIMS,
    },
    conformIdTokenClaims: false,
    acrValues: ACR_VALUES,
    features: {
      devInteractions: { enabled: false },
      claimsParameter: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          ctx.type = 'html';
          ctx.body = page('Sign out', `${form}
<p>Do you want to sign out of the test OpenID Provider?</p>
<button id="logout-yes" type="submit" form="op.logoutForm" name="logout" value="yes">Yes, sign me out</button>
<button id="logout-no" type="submit" form="op.logoutForm">No, stay signed in</button>`);
        },
        async postLogoutSuccessSource(ctx) {
          ctx.type = 'html';
          ctx.body = page('Signed out', '<p>You are signed out.</p>');
        },
      },
    },
    interactions: {
      url: (_ctx, interactionInfo) => `/interaction/${interactionInfo.uid}`,
    },
    loadExistingGrant: (ctx) => grantEverythingRequested(provider, ctx),
    async renderError(ctx, out) {
      ctx.type = 'html';
      const items = Object.entries(out)
        .map(([key, value]) => `<dt>${escapeHtml(key)}</dt><dd id="error-${escapeHtml(key)}">${escapeHtml(value)}</dd>`)
        .join('');
      ctx.body = page('Error', `<dl>${items}</dl>`);
    },
  });
  for (const event of ['server_error', 'authorization.error', 'grant.error', 'end_session.error']) {
    provider.on(event, (_ctx, error) => {
      process.stderr.write(`oidc-provider ${event}: ${error?.stack ?? error}\n`);
    });
  }
  return provider;
}

let provider;
let callback;
const server = createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  const match = /^\/interaction\/([A-Za-z0-9_-]+)$/.exec(url.pathname);
  if (match && (req.method === 'GET' || req.method === 'POST')) {
    interaction(provider, req, res, match[1]).catch((error) => {
      process.stderr.write(`interaction failed: ${error?.stack ?? error}\n`);
      if (!res.headersSent) {
        sendHtml(res, 400, page('Error', `<p id="error-interaction">${escapeHtml(error?.message ?? error)}</p>`));
      } else {
        res.end();
      }
    });
    return;
  }
  callback(req, res);
});

server.listen(Number(args.port), args.host, () => {
  const { port } = server.address();
  const host = args.host.includes(':') ? `[${args.host}]` : args.host;
  const issuer = `http://${host}:${port}`;
  provider = buildProvider(issuer);
  callback = provider.callback();
  process.stdout.write(`READY ${issuer}\n`);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
