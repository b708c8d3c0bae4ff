// A real OpenID provider (oidc-provider) for sqlgate's identity tests.
//
// Usage: node provider.mjs <port>
// Issuer: http://127.0.0.1:<port>. Prints "ready <issuer>" on stdout when listening.
// Clients: "svc" (client_credentials, secret "svc-secret") and "cli" (public: device flow,
// authorization code + PKCE on a loopback redirect, refresh tokens), and "console" (public: the web
// console's "Sign in with", authorization code + PKCE back to <gateway>/ui/login/callback on loopback).
// Access tokens are JWTs for audience "sqlgate" (resource indicators with a default resource);
// a client that names a resource (RFC 8707 `resource`, e.g. a gateway's public URL) gets that
// resource as the audience, as identity providers with resource indicators or API audiences do.
// Test-only admin endpoint: POST /admin/rotate signs with a fresh RSA key from then on
// (the old key stays published until POST /admin/retire).
import { createServer } from 'node:http';
import { generateKeyPairSync, randomUUID } from 'node:crypto';

import Provider from 'oidc-provider';

const port = Number(process.argv[2] || 0);
const issuer = `http://127.0.0.1:${port}`;
const RESOURCE = 'urn:sqlgate:gateway';

const accounts = {
  alice: { name: 'Alice Analyst', email: 'alice@example.com', groups: ['analysts'] },
  bob: { name: 'Bob Builder', email: 'bob@example.com', groups: ['engineers', 'oncall'] },
};

function newKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'RS256' };
}

let keys = [newKey()];

async function findAccount(ctx, id) {
  const account = accounts[id] || { name: id, email: `${id}@example.com`, groups: [] };
  return {
    accountId: id,
    async claims() {
      return { sub: id, ...account, email_verified: true };
    },
  };
}

function configuration() {
  return {
    clients: [
      {
        client_id: 'svc',
        client_secret: 'svc-secret',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_post',
        scope: 'api',
      },
      {
        client_id: 'cli',
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: ['http://127.0.0.1/callback'],
      },
      {
        client_id: 'console',
        application_type: 'native', // a loopback redirect on any port (RFC 8252): test gateways bind port 0
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: ['http://127.0.0.1/ui/login/callback', 'http://localhost/ui/login/callback'],
      },
    ],
    jwks: { keys },
    findAccount,
    claims: { openid: ['sub'], profile: ['name', 'groups'], email: ['email', 'email_verified'] },
    scopes: ['openid', 'offline_access', 'api'],
    pkce: { required: () => true },
    ttl: { AccessToken: 600, ClientCredentials: 600, DeviceCode: 300, IdToken: 600, RefreshToken: 86400 },
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    async extraTokenClaims(ctx, token) {
      if (!token.accountId) return undefined;
      const { name, groups, email } = accounts[token.accountId] || { groups: [] };
      return { name, groups, email };
    },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      deviceFlow: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => RESOURCE,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, resourceIndicator) => ({
          scope: 'api openid offline_access profile email',
          audience: resourceIndicator === RESOURCE ? 'sqlgate' : resourceIndicator,
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
  };
}

let provider = new Provider(issuer, configuration());
provider.proxy = false;

function rebuild() {
  provider = new Provider(issuer, configuration());
}

const server = createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/admin/rotate') {
    keys = [newKey(), ...keys];
    rebuild();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kid: keys[0].kid }));
    return;
  }
  if (req.method === 'POST' && req.url === '/admin/retire') {
    keys = keys.slice(0, 1);
    rebuild();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kid: keys[0].kid }));
    return;
  }
  provider.callback()(req, res);
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
