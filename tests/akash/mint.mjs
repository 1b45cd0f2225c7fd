// Akash provider-API tokens minted by the real Akash SDK for certfleet's tests (tests/akash.rs):
// npm `@akashnetwork/chain-sdk` (JwtTokenManager) with CosmJS wallets, as Console, Keplr and the
// SDK's users sign them.
//
//   node mint.mjs < request.json > tokens.json
//
// Request: {"wallets": {"NAME": "bip-39 mnemonic", ...},
//           "tokens": [{"name": "...", "wallet": "NAME", "alg": "ES256K" | "ES256KADR36",
//                       "leases": {...}, "exp": 123, "nbf": 1, "iat": 1, "jti": "...",
//                       "signWith": "OTHER WALLET NAME"}]}
// `exp`, `nbf`, `iat`, `leases` and `jti` are optional (the SDK's defaults: one hour, now,
// full access). `signWith` makes a hostile token: `iss` is the wallet's address, but the
// signature is made with another wallet's key (the SDK's own signers refuse to do that, so this
// one path signs through a custom signArbitrary built like the SDK's).
// Answer: {"wallets": {"NAME": {"address": "akash1...", "pubkey": "<base64, 33 bytes>"}},
//          "tokens": {"NAME": "<jwt>"}}
//
// ES256KADR36 goes through the SDK's default path: `new JwtTokenManager(wallet)` with a
// `Secp256k1HdWallet` (signAmino of the ADR-036 document). ES256K goes through the SDK with
// `{algorithm: "ES256K", signArbitrary}`, signing SHA-256 of the signing input with
// @cosmjs/crypto's Secp256k1 (low-S, R||S), as the Go client does.

import { JwtTokenManager } from '@akashnetwork/chain-sdk';
import { Secp256k1HdWallet, makeCosmoshubPath, makeSignDoc, serializeSignDoc } from '@cosmjs/amino';
import { Bip39, EnglishMnemonic, Secp256k1, Slip10, Slip10Curve, sha256 } from '@cosmjs/crypto';

const input = JSON.parse(await new Promise((resolve, reject) => {
  let text = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk) => { text += chunk; });
  process.stdin.on('end', () => resolve(text));
  process.stdin.on('error', reject);
}));

const wallets = {};
for (const [name, mnemonic] of Object.entries(input.wallets)) {
  const wallet = await Secp256k1HdWallet.fromMnemonic(mnemonic, { prefix: 'akash' });
  const [account] = await wallet.getAccounts();
  const seed = await Bip39.mnemonicToSeed(new EnglishMnemonic(mnemonic));
  const { privkey } = Slip10.derivePath(Slip10Curve.Secp256k1, seed, makeCosmoshubPath(0));
  wallets[name] = { wallet, address: account.address, pubkey: account.pubkey, privkey };
}

/** R||S (64 bytes, low S) of SHA-256(bytes), base64, as the SDK's signArbitrary returns it. */
async function signRS(privkey, bytes) {
  const signature = await Secp256k1.createSignature(sha256(bytes), privkey);
  return Buffer.from(signature.toFixedLength().slice(0, 64)).toString('base64');
}

function es256kSigner(privkey) {
  return {
    algorithm: 'ES256K',
    async signArbitrary(_signer, data) {
      return { signature: await signRS(privkey, new TextEncoder().encode(data)) };
    },
  };
}

/** The SDK's ADR-036 signer, with a key of our choosing. */
function adr36Signer(privkey) {
  return {
    algorithm: 'ES256KADR36',
    async signArbitrary(signer, data) {
      const msg = {
        type: 'sign/MsgSignData',
        value: { signer, data: Buffer.from(data, 'utf8').toString('base64') },
      };
      const doc = makeSignDoc([msg], { gas: '0', amount: [] }, '', '', '0', '0');
      return { signature: await signRS(privkey, serializeSignDoc(doc)) };
    },
  };
}

const tokens = {};
for (const spec of input.tokens) {
  const owner = wallets[spec.wallet];
  const signer = spec.signWith ? wallets[spec.signWith] : owner;
  let manager;
  if (spec.alg === 'ES256K') {
    manager = new JwtTokenManager(es256kSigner(signer.privkey));
  } else if (spec.signWith) {
    manager = new JwtTokenManager(adr36Signer(signer.privkey));
  } else {
    manager = new JwtTokenManager(owner.wallet);
  }
  const options = { iss: owner.address, version: 'v1' };
  for (const key of ['exp', 'nbf', 'iat', 'leases', 'jti']) {
    if (spec[key] !== undefined) options[key] = spec[key];
  }
  tokens[spec.name] = await manager.generateToken(options);
}

const out = { wallets: {}, tokens };
for (const [name, w] of Object.entries(wallets)) {
  out.wallets[name] = { address: w.address, pubkey: Buffer.from(w.pubkey).toString('base64') };
}
process.stdout.write(JSON.stringify(out));
