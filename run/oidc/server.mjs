// Local OIDC provider for `make run` and the end-to-end tutorial test: a real, unmodified
// oidc-provider (https://github.com/panva/node-oidc-provider) with one confidential client that may
// use the client_credentials grant, as in the Kyma tutorial "Get a JWT".
//
// - discovery:    <ISSUER>/.well-known/openid-configuration (token_endpoint, jwks_uri, issuer)
// - tokens:       client_credentials -> RS256 JWT access token (typ "at+jwt", kid of the key below)
//                 for the resource server RESOURCE (the token's "aud"); scopes "read" and "write"
//                 are granted when requested (scope=read, scope="read write"), none otherwise.
// - signing key:  a fresh RSA-2048 key per start (nothing is written to disk), published at jwks_uri.
//
// Configuration (environment):
//   PORT (3000), HOST (bind address, 127.0.0.1), ISSUER (http://127.0.0.1:<PORT>),
//   CLIENT_ID (kyma-tutorial), CLIENT_SECRET (tutorial-secret), RESOURCE (https://local.kyma.dev).
// The issuer is also the base of every endpoint URL in discovery, so it must be the URL clients use.
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';

import Provider, { errors } from 'oidc-provider';

const env = process.env;
const port = Number(env.PORT ?? 3000);
const host = env.HOST ?? '127.0.0.1';
const issuer = env.ISSUER ?? `http://127.0.0.1:${port}`;
const clientId = env.CLIENT_ID ?? 'kyma-tutorial';
const clientSecret = env.CLIENT_SECRET ?? 'tutorial-secret';
const resource = env.RESOURCE ?? 'https://local.kyma.dev';
const scopes = 'read write';

if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error(`invalid PORT ${JSON.stringify(env.PORT)}`);
  process.exit(2);
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: randomUUID(),
  use: 'sig',
  alg: 'RS256',
};

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      // The tutorial sends `Authorization: Basic base64(id:secret)`.
      token_endpoint_auth_method: 'client_secret_basic',
      scope: scopes,
    },
  ],
  jwks: { keys: [signingKey] },
  scopes: ['openid', ...scopes.split(' ')],
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // A plain `grant_type=client_credentials` (no `resource` parameter), as in the tutorial,
      // is a request for RESOURCE, so it yields a JWT rather than an opaque token.
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, indicator) => {
        if (indicator !== resource) {
          throw new errors.InvalidTarget(`unknown resource ${indicator}; this provider serves ${resource}`);
        }
        return {
          scope: scopes,
          audience: resource,
          accessTokenTTL: 60 * 60,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  ttl: {
    AccessToken: 60 * 60,
    ClientCredentials: 60 * 60,
    Grant: 60 * 60,
    Interaction: 60 * 60,
    Session: 60 * 60,
    IdToken: 60 * 60,
  },
  // Log the reason of every refused token request: the first thing to look at when a curl fails.
  renderError: (ctx, out) => {
    ctx.type = 'json';
    ctx.body = out;
  },
});

provider.on('server_error', (_ctx, err) => console.error('server_error', err));
provider.on('grant.error', (_ctx, err) => console.error('grant.error', err.message, err.error_description ?? ''));
provider.on('grant.success', (ctx) => console.log(`token issued to ${ctx.oidc.client?.clientId}`));

const server = provider.listen(port, host, () => {
  console.log(`oidc-provider listening on http://${host}:${port}`);
  console.log(`issuer:    ${issuer}`);
  console.log(`discovery: ${issuer}/.well-known/openid-configuration`);
  console.log(`client_id=${clientId} client_secret=${clientSecret} resource=${resource} scopes="${scopes}"`);
  console.log(`signing key: RS256 kid=${signingKey.kid}`);
});
server.on('error', (err) => {
  console.error(`cannot listen on ${host}:${port}: ${err.message}`);
  process.exit(1);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
