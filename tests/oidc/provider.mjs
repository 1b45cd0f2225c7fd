// A real OpenID provider for certfleet's tests (tests/oidc.rs): npm `oidc-provider` on loopback.
//
//   node provider.mjs PORT KEY_PEM_FILE
//
// Signs RS256 access tokens with the PKCS#8 RSA key in KEY_PEM_FILE (the test writes it, so it
// can mint hostile tokens with the same key and restart the provider with a new one). Access
// tokens are RFC 9068 JWTs (`typ: at+jwt`) thanks to resource indicators (RFC 8707): `aud` is
// the requested `resource`. Clients (client_credentials, client_secret_basic):
//   certfleet-client / certfleet-client-secret   may ask `certificates:request`; its tokens carry
//                                                `domains: ["oidc.example.test", "*.oidc.example.test"]`
//   scopeless-client / scopeless-client-secret   may ask `other:read` only
// Test-only routes: GET /test/jwks-count (how many times /jwks was fetched).
// Prints `listening PORT` on stdout once it accepts connections.

import { readFileSync } from 'node:fs';

import * as jose from 'jose';
import Provider from 'oidc-provider';

const [port, keyFile] = process.argv.slice(2);
if (!port || !keyFile) {
  console.error('usage: node provider.mjs PORT KEY_PEM_FILE');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

const privateKey = await jose.importPKCS8(readFileSync(keyFile, 'utf8'), 'RS256', { extractable: true });
const signingJwk = { ...(await jose.exportJWK(privateKey)), alg: 'RS256', use: 'sig' };
signingJwk.kid = await jose.calculateJwkThumbprint(signingJwk);

const DOMAINS = {
  'certfleet-client': ['oidc.example.test', '*.oidc.example.test'],
};

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'certfleet-client',
      client_secret: 'certfleet-client-secret',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      scope: 'certificates:request',
    },
    {
      client_id: 'scopeless-client',
      client_secret: 'scopeless-client-secret',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      scope: 'other:read',
    },
  ],
  scopes: ['openid', 'certificates:request', 'other:read'],
  jwks: { keys: [signingJwk] },
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource) => ({
        scope: 'certificates:request other:read',
        audience: resource,
        accessTokenTTL: 300,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  extraTokenClaims: (_ctx, token) => {
    const domains = DOMAINS[token.clientId];
    return domains ? { domains } : undefined;
  },
  cookies: { keys: ['certfleet-test-cookie-key'] },
});

let jwksFetches = 0;
provider.use(async (ctx, next) => {
  if (ctx.path === '/test/jwks-count') {
    ctx.body = { count: jwksFetches };
    return;
  }
  if (ctx.path === '/jwks') {
    jwksFetches += 1;
  }
  await next();
});

const server = provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`listening ${port}`);
});
server.on('error', (err) => {
  console.error(`cannot listen on 127.0.0.1:${port}: ${err.message}`);
  process.exit(1);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
