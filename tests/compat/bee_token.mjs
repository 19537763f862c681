#!/usr/bin/env node
// An independent implementation of Swarm Bee's token format (Bee <= 2.1,
// pkg/auth), with Node's crypto only, to check keygate against:
//   node bee_token.mjs mint KEY ROLE EXPIRY_RFC3339   prints a token
//   node bee_token.mjs open KEY TOKEN                 prints the plaintext JSON, exit 1 if it does not open
// Key: the 32 ASCII characters of hex(md5(KEY)); AES-256-GCM, 12-byte nonce,
// wire = base64(nonce || ciphertext || tag); plaintext {"r":ROLE,"e":EXPIRY}.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

const aesKey = (secret) => Buffer.from(createHash('md5').update(secret).digest('hex'), 'ascii');

function mint(secret, role, expiry) {
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', aesKey(secret), nonce);
  const plain = JSON.stringify({ r: role, e: expiry });
  const ct = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
  return Buffer.concat([nonce, ct, c.getAuthTag()]).toString('base64');
}

function open(secret, token) {
  const raw = Buffer.from(token, 'base64');
  if (raw.length < 12 + 16) throw new Error('too short');
  const d = createDecipheriv('aes-256-gcm', aesKey(secret), raw.subarray(0, 12));
  d.setAuthTag(raw.subarray(raw.length - 16));
  return Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]).toString('utf8');
}

const [cmd, ...args] = process.argv.slice(2);
try {
  if (cmd === 'mint' && args.length === 3) console.log(mint(...args));
  else if (cmd === 'open' && args.length === 2) console.log(open(...args));
  else { console.error('usage: bee_token.mjs mint KEY ROLE EXPIRY | open KEY TOKEN'); process.exit(2); }
} catch (e) {
  console.error(String(e.message || e));
  process.exit(1);
}
