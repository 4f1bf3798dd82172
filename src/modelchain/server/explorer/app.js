// modelchain explorer: a client of /api/v1 (docs/api.md) that checks what the server says.
//
// Nothing here trusts the server: the checkpoint's Ed25519 signature is checked against the
// verifier key the server publishes, a block's leaf hash is recomputed from its exact bytes
// and its RFC 9162 inclusion proof is folded up to the root in that signed checkpoint, and
// the index proof that a block is its model's newest version (or that a name is not
// registered) is folded up to the index root the checkpoint signs. Ledger text is only ever
// inserted as text (never as HTML), and files dropped on the "Check a file" page are hashed
// here and never sent anywhere: only their digest is looked up.
"use strict";

(() => {
  const API = "/api/v1";
  const PAGE = 20; // blocks per page
  const HOME_BLOCKS = 5;
  // Files up to this size are hashed by WebCrypto in one piece (it needs the whole file in
  // memory); larger ones are read in CHUNK slices through the incremental SHA-256 below.
  const SUBTLE_LIMIT = 256 * 1024 * 1024;
  const CHUNK = 4 * 1024 * 1024;
  const SIG_PREFIX = "\u2014 "; // em dash and space starts a signed-note signature line
  const subtle = globalThis.crypto && globalThis.crypto.subtle; // https or localhost only
  const utf8 = new TextEncoder();

  // -- small helpers ----------------------------------------------------------------------

  /** Build an element; strings become text nodes (never HTML), null/false are skipped. */
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function fromHex(text, what) {
    if (typeof text !== "string" || !/^(?:[0-9a-f]{2})*$/.test(text)) {
      throw new Error(`${what} is not lowercase hex`);
    }
    const out = new Uint8Array(text.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
    return out;
  }

  function fromBase64(text, what) {
    let raw;
    try {
      raw = atob(text);
    } catch {
      throw new Error(`${what} is not valid base64`);
    }
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  function toBase64(bytes) {
    return btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""));
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  function equal(a, b) {
    return a.length === b.length && a.every((x, i) => x === b[i]);
  }

  function short(digest) {
    return typeof digest === "string" && digest.length > 16
      ? `${digest.slice(0, 12)}…${digest.slice(-4)}`
      : String(digest);
  }

  function when(seconds) {
    const d = new Date(Number(seconds) * 1000);
    return Number.isFinite(d.getTime())
      ? d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC")
      : String(seconds);
  }

  function bytesText(n) {
    if (!Number.isFinite(n)) return String(n);
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]} (${n.toLocaleString("en")} B)`;
  }

  const route = (path, params) => {
    const q = new URLSearchParams(params || {}).toString();
    return `#${path}${q ? `?${q}` : ""}`;
  };
  const entryLink = (index) => h("a", { href: route(`/entry/${index}`) }, String(index));
  const modelLink = (name) =>
    h("a", { href: route(`/model/${encodeURIComponent(name)}`) }, String(name));

  // -- SHA-256 (FIPS 180-4), for files too big for WebCrypto and for insecure contexts -----

  const K = new Int32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
  ]);
  const H0 = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
    0x5be0cd19,
  ];

  class Sha256 {
    constructor() {
      this.state = new Int32Array(H0);
      this.pending = new Uint8Array(64);
      this.used = 0;
      this.length = 0; // bytes hashed so far
      this.w = new Int32Array(64);
    }

    update(data) {
      const n = data.length;
      let i = 0;
      if (this.used > 0) {
        i = Math.min(64 - this.used, n);
        this.pending.set(data.subarray(0, i), this.used);
        this.used += i;
        if (this.used === 64) {
          this.compress(this.pending, 0);
          this.used = 0;
        }
      }
      for (; i + 64 <= n; i += 64) this.compress(data, i);
      if (i < n) {
        this.pending.set(data.subarray(i), 0);
        this.used = n - i;
      }
      this.length += n;
      return this;
    }

    digest() {
      const total = this.length;
      const tail = new Uint8Array(this.used < 56 ? 64 - this.used : 128 - this.used);
      tail[0] = 0x80;
      const view = new DataView(tail.buffer);
      view.setUint32(tail.length - 8, Math.floor(total / 0x20000000)); // bits, high word
      view.setUint32(tail.length - 4, (total % 0x20000000) * 8); // bits, low word
      this.update(tail);
      const out = new Uint8Array(32);
      const outView = new DataView(out.buffer);
      for (let i = 0; i < 8; i++) outView.setInt32(4 * i, this.state[i]);
      return out;
    }

    compress(d, at) {
      // Int32 arithmetic throughout (`| 0`) keeps V8 on its fast small-integer path.
      const w = this.w;
      for (let t = 0; t < 16; t++) {
        const j = at + (t << 2);
        w[t] = (d[j] << 24) | (d[j + 1] << 16) | (d[j + 2] << 8) | d[j + 3];
      }
      for (let t = 16; t < 64; t++) {
        const x = w[t - 15];
        const y = w[t - 2];
        const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
        const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
        w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
      }
      const s = this.state;
      let a = s[0];
      let b = s[1];
      let c = s[2];
      let dd = s[3];
      let e = s[4];
      let f = s[5];
      let g = s[6];
      let hh = s[7];
      for (let t = 0; t < 64; t++) {
        const sum1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        const t1 = (hh + sum1 + ((e & f) ^ (~e & g)) + K[t] + w[t]) | 0;
        const sum0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        const t2 = (sum0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        hh = g;
        g = f;
        f = e;
        e = (dd + t1) | 0;
        dd = c;
        c = b;
        b = a;
        a = (t1 + t2) | 0;
      }
      s[0] = (s[0] + a) | 0;
      s[1] = (s[1] + b) | 0;
      s[2] = (s[2] + c) | 0;
      s[3] = (s[3] + dd) | 0;
      s[4] = (s[4] + e) | 0;
      s[5] = (s[5] + f) | 0;
      s[6] = (s[6] + g) | 0;
      s[7] = (s[7] + hh) | 0;
    }
  }

  async function sha256(bytes) {
    if (subtle) return new Uint8Array(await subtle.digest("SHA-256", bytes));
    return new Sha256().update(bytes).digest();
  }

  /** SHA-256 of a File, read locally; `progress(done, total)` is called as it goes. */
  async function hashFile(file, progress, limit = SUBTLE_LIMIT) {
    if (subtle && file.size <= limit) {
      const digest = await subtle.digest("SHA-256", await file.arrayBuffer());
      progress(file.size, file.size);
      return hex(new Uint8Array(digest));
    }
    const state = new Sha256();
    for (let at = 0; at < file.size; at += CHUNK) {
      const piece = new Uint8Array(await file.slice(at, at + CHUNK).arrayBuffer());
      state.update(piece);
      progress(Math.min(at + CHUNK, file.size), file.size);
    }
    return hex(state.digest());
  }

  // -- the API ----------------------------------------------------------------------------

  async function api(path) {
    let response;
    try {
      response = await fetch(API + path, {
        headers: { Accept: "application/json" },
        cache: "no-store",
        credentials: "omit",
      });
    } catch (err) {
      throw new Error(`cannot reach the server (${err.message})`);
    }
    let body;
    try {
      body = await response.json();
    } catch {
      throw new Error(`${API}${path}: HTTP ${response.status}, and the answer is not JSON`);
    }
    if (!response.ok) {
      const message = body && body.error && body.error.message;
      throw new Error(message || `${API}${path}: HTTP ${response.status}`);
    }
    return body;
  }

  // -- signed notes and checkpoints (C2SP signed-note, tlog-checkpoint) ---------------------

  function parseVerifierKey(text) {
    const first = text.indexOf("+");
    const second = first < 0 ? -1 : text.indexOf("+", first + 1);
    if (second < 0) throw new Error("the verifier key is not name+keyid+key");
    const name = text.slice(0, first);
    const keyIdHex = text.slice(first + 1, second);
    if (!/^[0-9a-f]{8}$/.test(keyIdHex)) throw new Error("the verifier key's ID is not 8 hex");
    const raw = fromBase64(text.slice(second + 1), "the verifier key");
    if (raw.length !== 33 || raw[0] !== 0x01) {
      throw new Error("the verifier key is not an Ed25519 key (0x01 and 32 bytes)");
    }
    return { name, keyIdHex, keyId: fromHex(keyIdHex, "key ID"), typeAndKey: raw };
  }

  function parseNote(note) {
    const split = note.lastIndexOf("\n\n");
    if (split < 0) throw new Error("the note has no blank line before its signatures");
    const text = note.slice(0, split + 1);
    const block = note.slice(split + 2);
    if (!block.endsWith("\n")) throw new Error("the note does not end with a newline");
    const signatures = block
      .slice(0, -1)
      .split("\n")
      .map((line, i) => {
        if (!line.startsWith(SIG_PREFIX)) {
          throw new Error(`signature line ${i + 1} does not start with an em dash`);
        }
        const [name, b64, extra] = line.slice(SIG_PREFIX.length).split(" ");
        if (!b64 || extra !== undefined) throw new Error(`signature line ${i + 1} is malformed`);
        const raw = fromBase64(b64, `signature line ${i + 1}`);
        if (raw.length < 5) throw new Error(`signature line ${i + 1} is too short`);
        return { name, keyHash: raw.slice(0, 4), signature: raw.slice(4) };
      });
    return { text, signatures };
  }

  function parseCheckpoint(text) {
    const lines = text.slice(0, -1).split("\n");
    if (lines.length < 3) throw new Error("the checkpoint does not have origin, size and root");
    const [origin, sizeText, rootText] = lines;
    if (!/^(?:0|[1-9][0-9]*)$/.test(sizeText)) throw new Error("the checkpoint size is bad");
    const root = fromBase64(rootText, "the checkpoint root");
    if (root.length !== 32) throw new Error("the checkpoint root is not 32 bytes");
    return { origin, size: Number(sizeText), root, extensions: lines.slice(3) };
  }

  /**
   * Check the checkpoint in a /log answer against the verifier key in the same answer.
   * `state` is "true", "false", or "unknown" (this browser cannot check Ed25519).
   */
  async function checkCheckpoint(log) {
    const steps = [];
    const step = (state, text) => steps.push({ state, text });
    const result = {
      state: "false", steps, checkpoint: null, key: null, message: "", note: String(log.checkpoint),
    };
    try {
      const note = parseNote(String(log.checkpoint));
      const cp = parseCheckpoint(note.text);
      result.checkpoint = cp;
      step("true", "the note parses as a checkpoint");
      const key = parseVerifierKey(String(log.verifier_key));
      result.key = key;
      const computedId = (await sha256(concat(utf8.encode(`${key.name}\n`), key.typeAndKey)))
        .slice(0, 4);
      if (!equal(computedId, key.keyId)) throw new Error("the verifier key's ID does not match");
      step("true", `the key ID ${key.keyIdHex} matches the key's name and bytes`);
      if (cp.origin !== key.name) {
        throw new Error(`the checkpoint origin ${cp.origin} is not the key name ${key.name}`);
      }
      const mine = note.signatures.filter(
        (s) => s.name === key.name && equal(s.keyHash, key.keyId),
      );
      if (mine.length === 0) throw new Error(`no signature by key ${key.name}+${key.keyIdHex}`);
      if (log.size !== cp.size || log.root_hash !== hex(cp.root) || log.origin !== cp.origin) {
        throw new Error("the size, root or origin the API reports differ from the signed note");
      }
      step("true", "the API's origin, size and root hash are the ones in the signed note");
      let publicKey;
      try {
        if (!subtle) throw new Error("no WebCrypto");
        publicKey = await subtle.importKey(
          "raw",
          key.typeAndKey.slice(1),
          { name: "Ed25519" },
          false,
          ["verify"],
        );
      } catch {
        result.state = "unknown";
        result.message =
          "This browser cannot check Ed25519 signatures here (WebCrypto needs https or " +
          "localhost): check the checkpoint with `modelchain note verify`.";
        step("unknown", "Ed25519 signature not checked");
        return result;
      }
      const message = utf8.encode(note.text);
      for (const sig of mine) {
        const ok = await subtle.verify({ name: "Ed25519" }, publicKey, sig.signature, message);
        if (!ok) throw new Error(`the signature by ${key.name} does not verify`);
      }
      step("true", `Ed25519 signature valid for key ${key.name}+${key.keyIdHex}`);
      result.state = "true";
      result.message =
        `Signature verified: valid for key ${key.name}+${key.keyIdHex}, the key this ` +
        "server publishes.";
    } catch (err) {
      step("false", err.message);
      result.state = "false";
      result.message = `Checkpoint NOT verified: ${err.message}`;
    }
    return result;
  }

  // -- RFC 9162 inclusion proofs ----------------------------------------------------------

  const leafHash = (data) => sha256(concat(new Uint8Array([0]), utf8.encode(data)));
  const nodeHash = (left, right) => sha256(concat(new Uint8Array([1]), left, right));

  /** Fold an inclusion proof (RFC 9162 section 2.1.3.2); returns the root it leads to. */
  async function rootFromInclusionProof(index, size, leaf, proof) {
    if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0) {
      throw new Error("the proof's index or size is not a usable integer");
    }
    if (index >= size) throw new Error(`index ${index} is not in a tree of ${size}`);
    // every hash is SHA-256: a shorter or longer one (even an empty leaf and root) is refused
    if (leaf.length !== 32) throw new Error("the leaf hash is not 32 bytes");
    proof.forEach((p, i) => {
      if (p.length !== 32) throw new Error(`proof hash ${i} is not 32 bytes`);
    });
    let fn = BigInt(index);
    let sn = BigInt(size - 1);
    let r = leaf;
    for (const p of proof) {
      if (sn === 0n) throw new Error("the proof has more hashes than the tree needs");
      if ((fn & 1n) === 1n || fn === sn) {
        r = await nodeHash(p, r);
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) throw new Error("the proof has fewer hashes than the tree needs");
    return r;
  }

  /** Does `proof` prove `leaf` at `index` in the tree of `size` whose root is `root`? */
  async function verifyInclusion(index, size, leaf, proof, root) {
    if (root.length !== 32) return false;
    try {
      return equal(await rootFromInclusionProof(index, size, leaf, proof), root);
    } catch {
      return false;
    }
  }

  /** Thrown for a block number at or beyond the signed tree's size: not a failed proof. */
  class NoSuchBlock extends Error {}

  /**
   * Prove block `index` is in the signed tree `cp`: fetch its exact leaf bytes and its
   * inclusion proof, hash the leaf here and fold the proof up to the signed root. Returns the
   * block parsed from those bytes (the only fields a verdict may use); throws naming the step
   * that failed. `got` receives the entry and proof as they arrive, for display.
   */
  async function proveEntry(index, cp, step = () => {}, got = {}) {
    if (!Number.isSafeInteger(index) || index < 0) {
      throw new Error(`the server named block ${index}, which is not a block number`);
    }
    if (index >= cp.size) {
      throw new NoSuchBlock(`the signed tree has ${cp.size} blocks, so there is no block ${index}`);
    }
    const [entry, proof] = await Promise.all([
      api(`/entries/${index}`),
      api(`/proof/inclusion?index=${index}&size=${cp.size}`),
    ]);
    got.entry = entry;
    got.proof = proof;
    return checkEntry(index, cp, entry, proof, step);
  }

  /**
   * Check an entry the server sent (its exact leaf bytes) and its inclusion proof against
   * the signed tree `cp`; returns { entry, proof, block, leaf } or throws naming the step.
   */
  async function checkEntry(index, cp, entry, proof, step = () => {}) {
    if (!entry || !proof) throw new Error(`block ${index} comes without its inclusion proof`);
    if (typeof entry.data !== "string") throw new Error(`block ${index} has no leaf data`);
    let block;
    try {
      block = JSON.parse(entry.data);
    } catch {
      throw new Error(`the leaf data of block ${index} is not JSON`);
    }
    if (entry.index !== index || !block || block.index !== index) {
      throw new Error(`the server sent block ${block && block.index} for block ${index}`);
    }
    step("true", `the leaf data is block ${index}`);
    const leaf = await leafHash(entry.data);
    if (hex(leaf) !== entry.leaf_hash || hex(leaf) !== proof.leaf_hash) {
      throw new Error("the leaf hash the server sent is not SHA-256(0x00 || data)");
    }
    step("true", `leaf hash SHA-256(0x00 || data) = ${short(hex(leaf))}`);
    if (proof.index !== index || proof.size !== cp.size) {
      throw new Error(`the proof is for block ${proof.index} of ${proof.size}, not ` +
        `${index} of ${cp.size}`);
    }
    if (!Array.isArray(proof.hashes)) throw new Error("the proof has no hashes");
    const hashes = proof.hashes.map((x, i) => fromHex(x, `proof hash ${i}`));
    const root = await rootFromInclusionProof(index, cp.size, leaf, hashes);
    if (!equal(root, cp.root)) {
      throw new Error(`the proof leads to root ${short(hex(root))}, not the signed root ` +
        `${short(hex(cp.root))}`);
    }
    step("true", `the ${hashes.length} proof hashes lead to the signed root ` +
      `${short(hex(cp.root))} of ${cp.size} blocks`);
    return { entry, proof, block, leaf };
  }

  // -- the signed index of newest versions (modelchain's core/index.py) ---------------------
  //
  // A compact sparse Merkle tree over SHA-256(name), most significant bit first: an empty
  // subtree hashes to 32 zero bytes, a lone key's leaf to SHA-256(0x00 || key || SHA-256(value))
  // and a node to SHA-256(0x01 || left || right). The checkpoint carries its root in the
  // extension line "modelchain-index/v1 <base64>"; a proof shows a name's value (its newest
  // block) or its absence against that root.

  const INDEX_LINE = "modelchain-index/v1";
  const KEY_BITS = 256;
  const EMPTY = new Uint8Array(32);
  const MAX_INDEX_PROOF = 2 + KEY_BITS / 8 + KEY_BITS * 32 + 1 + 64;

  /** The index root a checkpoint's extension lines carry, or null; strict, as in Python. */
  function indexRoot(extensions) {
    let found = null;
    for (const line of extensions) {
      if (!line.startsWith("modelchain-index/")) continue;
      const space = line.indexOf(" ");
      const head = space < 0 ? line : line.slice(0, space);
      if (head !== INDEX_LINE) throw new Error(`the checkpoint carries an unknown index ${head}`);
      if (found !== null) throw new Error("the checkpoint carries two index roots");
      const text = line.slice(space + 1);
      let root = null;
      try {
        root = fromBase64(text, "the index root");
      } catch {
        root = null;
      }
      if (!root || root.length !== 32 || toBase64(root) !== text) {
        throw new Error("the checkpoint's index root is not the base64 of 32 bytes");
      }
      found = root;
    }
    return found;
  }

  /** Parse an index proof exactly as Proof.from_bytes does (anything else is refused). */
  function parseIndexProof(data) {
    if (data.length < 3 || data.length > MAX_INDEX_PROOF) {
      throw new Error("index proof: wrong length");
    }
    const depth = (data[0] << 8) | data[1];
    if (depth > KEY_BITS) throw new Error(`index proof: depth ${depth} is more than ${KEY_BITS}`);
    const mapBytes = Math.ceil(depth / 8);
    let pos = 2 + mapBytes;
    if (data.length < pos) throw new Error("index proof: truncated");
    const bitmap = data.slice(2, pos);
    if (depth % 8 && bitmap[mapBytes - 1] & (0xff >> (depth % 8))) {
      throw new Error("index proof: bits set past its depth");
    }
    const siblings = [];
    for (let i = 0; i < depth; i++) {
      if (bitmap[i >> 3] & (0x80 >> (i % 8))) {
        const sibling = data.slice(pos, pos + 32);
        if (sibling.length !== 32 || equal(sibling, EMPTY)) {
          throw new Error("index proof: truncated or empty sibling marked present");
        }
        siblings.push(sibling);
        pos += 32;
      } else {
        siblings.push(EMPTY);
      }
    }
    const tail = data.slice(pos);
    if (tail.length === 1 && tail[0] === 0) return { siblings, other: null };
    if (tail.length === 65 && tail[0] === 1) {
      return { siblings, other: [tail.slice(1, 33), tail.slice(33)] };
    }
    throw new Error("index proof: bad ending");
  }

  const keyBit = (key, level) => (key[level >> 3] >> (7 - (level % 8))) & 1;

  function samePrefix(a, b, bits) {
    for (let i = 0; i < bits; i++) if (keyBit(a, i) !== keyBit(b, i)) return false;
    return true;
  }

  /**
   * Check that `key` holds `value` (bytes), or with `value` null that it holds nothing, in
   * the index whose root is `root`: as core/index.py's verify, canonical proofs only.
   * Throws naming the first problem.
   */
  async function verifyIndexProof(root, key, value, proof) {
    const depth = proof.siblings.length;
    if (key.length !== 32 || depth > KEY_BITS) throw new Error("index proof: deeper than the key");
    let node;
    if (value !== null) {
      if (proof.other !== null) {
        throw new Error("index proof: a proof of absence cannot prove a value");
      }
      node = await sha256(concat(new Uint8Array([0]), key, await sha256(value)));
    } else if (proof.other === null) {
      node = EMPTY;
    } else {
      const [otherKey, otherValueHash] = proof.other;
      if (equal(otherKey, key)) throw new Error("index proof: the key is present, not absent");
      if (!samePrefix(otherKey, key, depth)) {
        throw new Error("index proof: the other leaf is not on the key's path");
      }
      node = await sha256(concat(new Uint8Array([0]), otherKey, otherValueHash));
    }
    if (depth && equal(proof.siblings[depth - 1], EMPTY)) {
      throw new Error("index proof: not canonical (its last sibling is empty)");
    }
    for (let level = depth - 1; level >= 0; level--) {
      const sibling = proof.siblings[level];
      node = keyBit(key, level) ? await nodeHash(sibling, node) : await nodeHash(node, sibling);
    }
    if (!equal(node, root)) throw new Error("index proof does not lead to the signed index root");
  }

  /** What the index holds for a block (Entry.value(): canonical JSON, keys sorted). */
  function indexValue(block, index, leaf) {
    return utf8.encode(
      `{"index":${index},"leaf_hash":"${hex(leaf)}","name":${JSON.stringify(block.name)},` +
        `"versions":${block.version}}`,
    );
  }

  /**
   * The newest version of `name` as of the signed checkpoint `check` (or null: never
   * registered), proven here by the signed index and the signed tree from the server's
   * GET /proof/index answer. Throws naming what does not hold.
   */
  async function proveNewest(name, check, step = () => {}) {
    const cp = check.checkpoint;
    const root = indexRoot(cp.extensions);
    if (root === null) throw new Error("the signed checkpoint carries no index root");
    const answer = await api(`/proof/index?${new URLSearchParams({ name })}`);
    if (!answer || answer.name !== name) {
      throw new Error(`the server answered about ${JSON.stringify(answer && answer.name)}`);
    }
    if (answer.checkpoint !== check.note) {
      throw new Error("the index proof is under another checkpoint than the one checked " +
        "(the log may have grown: reload)");
    }
    if (typeof answer.index_proof !== "string") throw new Error("the server sent no index proof");
    let raw;
    try {
      raw = fromBase64(answer.index_proof, "the index proof");
    } catch {
      raw = null;
    }
    if (!raw || toBase64(raw) !== answer.index_proof) {
      throw new Error("the index proof is not canonical base64");
    }
    const proof = parseIndexProof(raw);
    const key = await sha256(utf8.encode(name));
    if (answer.entry === null && answer.inclusion_proof === null) {
      try {
        await verifyIndexProof(root, key, null, proof);
      } catch (err) {
        throw new Error(`the server says ${name} is not registered, but the signed index ` +
          `does not prove it (${err.message})`);
      }
      step("true", `the signed index proves no model named ${name} is registered`);
      return null;
    }
    const index = answer.entry && answer.entry.index;
    if (!Number.isSafeInteger(index) || index < 0 || index >= cp.size) {
      throw new Error(`the server names block ${index}, which is not in the signed tree`);
    }
    const { block, leaf } = await checkEntry(index, cp, answer.entry, answer.inclusion_proof, step);
    if (block.name !== name) {
      throw new Error(`the server shows block ${index} of ${JSON.stringify(block.name)} ` +
        `for ${name}`);
    }
    if (!Number.isSafeInteger(block.version) || block.version < 1) {
      throw new Error(`block ${index} has no usable version`);
    }
    try {
      await verifyIndexProof(root, key, indexValue(block, index, leaf), proof);
    } catch (err) {
      throw new Error(`${name} v${block.version} (block ${index}) is not proven to be the ` +
        `newest version by the signed index (${err.message}): a newer version may be hidden`);
    }
    step("true", `the signed index proves v${block.version} is the newest version`);
    return { index, block };
  }

  /** The signed checkpoint, checked; throws unless its signature verified or is unknown. */
  async function signedTree() {
    const check = await checkCheckpoint(await api("/log"));
    if (check.state === "false" || !check.checkpoint) throw new Error(check.message);
    return check;
  }

  // A lying server could page forever: past this many pages the list is called incomplete.
  const MAX_PAGES = 200;

  /**
   * Every entry `/search` lists for `query`, following its pages (1000 a page). These are
   * the server's word only: a verdict proves the entries it relies on with `proveEntry`.
   */
  async function searchAll(query, size) {
    const entries = [];
    let after = null;
    for (let pages = 0; pages < MAX_PAGES; pages++) {
      const q = new URLSearchParams({ ...query, limit: "1000" });
      if (after !== null) q.set("after", String(after));
      const got = await api(`/search?${q}`);
      if (!got || !Array.isArray(got.entries)) throw new Error("the search answer has no list");
      for (const entry of got.entries) {
        if (!Number.isSafeInteger(entry.index) || (after !== null && entry.index <= after)) {
          throw new Error("the search answer is not in index order");
        }
        after = entry.index;
        if (entry.index < size) entries.push(entry);
      }
      if (got.next === null || got.next === undefined || got.entries.length === 0) {
        return { entries, complete: true };
      }
      if (!Number.isSafeInteger(got.next) || got.next !== after) {
        throw new Error("the search answer's next page does not follow its last entry");
      }
    }
    return { entries, complete: false };
  }

  // -- pages ------------------------------------------------------------------------------

  const main = () => document.getElementById("main");

  /** A fresh container for one page; an old page's late answers land in a detached node. */
  function page(title, ...kids) {
    document.title = `${title} · modelchain explorer`;
    const box = h("div", { class: "page" }, h("h1", {}, title), ...kids);
    main().replaceChildren(box);
    return box;
  }

  function failure(box, err) {
    box.append(h("p", { class: "status", "data-ok": "false", role: "alert", id: "error" },
      String(err.message || err)));
  }

  function statusLine(id, state, text) {
    return h("p", { id, class: "status", "data-ok": state, role: "status" }, text);
  }

  function stepsList(steps) {
    return h("ul", { class: "steps" }, steps.map((s) => h("li", { "data-ok": s.state }, s.text)));
  }

  function blockOf(entry) {
    try {
      return JSON.parse(entry.data);
    } catch {
      return entry.block || {};
    }
  }

  /** Wide tables scroll inside their box on a narrow screen, not the whole page. */
  const scroller = (table) => h("div", { class: "table-scroll" }, table);

  function blocksTable(entries, caption) {
    return scroller(h("table", {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col", class: "num" }, "Block"),
        h("th", { scope: "col" }, "Model"),
        h("th", { scope: "col", class: "num" }, "Version"),
        h("th", { scope: "col" }, "Digest (SHA-256)"),
        h("th", { scope: "col", class: "wide-only" }, "Kind"),
        h("th", { scope: "col", class: "wide-only" }, "Registered"))),
      h("tbody", {}, entries.map((entry) => {
        const b = blockOf(entry);
        return h("tr", { "data-index": entry.index },
          h("td", { class: "num" }, entryLink(entry.index)),
          h("td", {}, b.name === undefined ? "—" : modelLink(b.name)),
          h("td", { class: "num" }, b.version === undefined ? "—" : `v${b.version}`),
          h("td", { class: "hash" }, h("code", { title: b.model_hash }, short(b.model_hash))),
          h("td", { class: "wide-only" }, b.kind || "file"),
          h("td", { class: "wide-only" }, when(b.timestamp)));
      }))));
  }

  async function homePage() {
    const box = page("Newest checkpoint");
    const pending = statusLine("checkpoint-status", "pending", "Checking the signature…");
    box.append(pending);
    let log;
    try {
      log = await api("/log");
    } catch (err) {
      pending.remove();
      failure(box, err);
      return;
    }
    const check = await checkCheckpoint(log);
    pending.replaceWith(statusLine("checkpoint-status", check.state, check.message));
    const cp = check.checkpoint;
    box.append(
      stepsList(check.steps),
      h("p", { class: "note" },
        "This page checks the checkpoint only against the key this server itself publishes: ",
        "it shows the data is consistent and signed by that key, not that the key is the ",
        "operator's. Pin the key with the command line (",
        h("code", {}, "modelchain audit --ledger URL --key VKEY"),
        "), which also remembers checkpoints and detects rollbacks."),
      h("dl", { class: "fields" },
        h("dt", {}, "Origin"), h("dd", { id: "origin" }, cp ? cp.origin : String(log.origin)),
        h("dt", {}, "Size"),
        h("dd", { id: "size" }, `${cp ? cp.size : log.size} blocks`),
        h("dt", {}, "Root hash"),
        h("dd", { id: "root-hash", class: "hash" }, cp ? hex(cp.root) : String(log.root_hash)),
        cp && h("dt", {}, "Root hash (base64, as in the note)"),
        cp && h("dd", { id: "root-hash-b64", class: "hash" }, toBase64(cp.root)),
        h("dt", {}, "Verifier key"),
        h("dd", { id: "verifier-key", class: "hash" }, String(log.verifier_key))),
      h("h2", {}, "Checkpoint note"),
      h("pre", { id: "checkpoint-note" }, String(log.checkpoint)),
    );
    const size = Number(log.size);
    if (!(size > 0)) {
      box.append(h("p", {}, "The ledger has no blocks yet."));
      return;
    }
    const from = Math.max(0, size - HOME_BLOCKS);
    try {
      const got = await api(`/entries?start=${from}&limit=${size - from}`);
      box.append(
        h("h2", {}, "Newest blocks"),
        blocksTable(got.entries.slice().reverse(), `The ${got.entries.length} newest blocks`),
        h("p", {}, h("a", { href: route("/entries") }, `All ${size} blocks →`)),
      );
    } catch (err) {
      failure(box, err);
    }
  }

  async function entriesPage(params) {
    const box = page("Blocks");
    try {
      const log = await api("/log");
      const size = Number(log.size);
      const oldestFirst = params.get("order") === "asc";
      const toggle = h("a", {
        href: oldestFirst ? route("/entries") : route("/entries", { order: "asc", start: 0 }),
        id: "order",
      }, oldestFirst ? "Newest first" : "Oldest first");
      if (size === 0) {
        box.append(h("p", {}, "The ledger has no blocks yet."));
        return;
      }
      let from;
      let to;
      if (oldestFirst) {
        from = Math.min(Math.max(0, intParam(params, "start", 0)), size - 1);
        to = Math.min(size, from + PAGE);
      } else {
        to = Math.min(Math.max(1, intParam(params, "end", size)), size);
        from = Math.max(0, to - PAGE);
      }
      const got = await api(`/entries?start=${from}&limit=${to - from}`);
      const rows = oldestFirst ? got.entries : got.entries.slice().reverse();
      const older = from > 0
        ? (oldestFirst ? null : route("/entries", { end: from }))
        : null;
      const newer = to < size
        ? (oldestFirst ? route("/entries", { order: "asc", start: to }) : route("/entries", {
          end: Math.min(size, to + PAGE),
        }))
        : null;
      const back = oldestFirst && from > 0
        ? route("/entries", { order: "asc", start: Math.max(0, from - PAGE) })
        : null;
      const links = oldestFirst
        ? [back && h("a", { href: back, rel: "prev", id: "prev" }, "← Previous"),
          newer && h("a", { href: newer, rel: "next", id: "next" }, "Next →")]
        : [newer && h("a", { href: newer, rel: "prev", id: "prev" }, "← Newer"),
          older && h("a", { href: older, rel: "next", id: "next" }, "Older →")];
      box.append(
        h("p", {}, `Blocks ${from}–${to - 1} of ${size} (the signed tree), `,
          oldestFirst ? "oldest first. " : "newest first. ", toggle),
        blocksTable(rows, oldestFirst ? "Oldest first" : "Newest first"),
        h("nav", { class: "pager", "aria-label": "Pages" }, links),
      );
    } catch (err) {
      failure(box, err);
    }
  }

  function intParam(params, name, fallback) {
    const text = params.get(name);
    return text !== null && /^[0-9]{1,15}$/.test(text) ? Number(text) : fallback;
  }

  /**
   * The newest version of `name`, proven. With a signed index (its root in the checkpoint),
   * by the index proof: the newest, or that there is none. Without one (a ledger made before
   * the index), the newest among the blocks the server lists, its leaf hashed and its
   * inclusion proof folded here: that no later version exists is then the server's word
   * only, so the pages say "newest listed", never "newest", of it.
   */
  async function newestListed(name, check) {
    const cp = check.checkpoint;
    if (indexRoot(cp.extensions) !== null) {
      return { listed: null, newest: await proveNewest(name, check), indexed: true };
    }
    const listed = await searchAll({ name }, cp.size);
    if (listed.entries.length === 0) return { listed, newest: null, indexed: false };
    const index = listed.entries[listed.entries.length - 1].index;
    const { block } = await proveEntry(index, cp);
    if (block.name !== name) {
      throw new Error(`the server lists block ${index} as ${name}, but its leaf names ` +
        `${JSON.stringify(block.name)}`);
    }
    return { listed, newest: { index, block }, indexed: false };
  }

  function listedNote(listed) {
    return `the ${listed.entries.length} version(s) the server listed` +
      (listed.complete ? "" : " (the list was too long to read to its end)");
  }

  const NOT_PROVEN_NEWEST = "not proven: a server can leave a later version out of its list";
  const BY_INDEX = "the newest version, proven by the signed index";

  /** How sure the page is that `got.newest` is the newest version. */
  function newestNote(got) {
    if (got.indexed) return BY_INDEX;
    return `the newest among ${listedNote(got.listed)} (${NOT_PROVEN_NEWEST})`;
  }

  async function modelPage(name) {
    const box = page(`Model ${name}`);
    box.append(statusLine("history-status", "pending", "Checking the newest version…"));
    try {
      const check = await signedTree();
      const cp = check.checkpoint;
      const indexed = indexRoot(cp.extensions) !== null;
      const listed = await searchAll({ name }, cp.size);
      const signedNote = check.state === "true"
        ? "proven in your browser (leaf hash, inclusion proof, signed checkpoint)."
        : "its inclusion proof leads to the checkpoint's root, but the checkpoint " +
          "signature was not checked here.";
      const table = () => listed.entries.length === 0 ? [] : [blocksTable(
        listed.entries.slice().reverse(),
        `Versions of ${name} the server listed, newest first (open a block to prove it)`)];
      if (indexed) {
        const lines = [];
        try {
          const newest = await proveNewest(name, check);
          if (newest === null) {
            lines.push(statusLine("history-status", check.state === "true" ? "false" : "unknown",
              `No model named ${name} is registered: proven by the signed index` +
              (check.state === "true" ? "." : ", but the checkpoint signature was not checked.")));
            if (listed.entries.length > 0) {
              lines.push(statusLine("history-listed", "false", "Yet the server lists " +
                `${listed.entries.length} block(s) for ${name}: its list is NOT to be believed.`));
            }
          } else {
            const { index, block } = newest;
            lines.push(
              statusLine("history-status", check.state,
                `${name} v${block.version} (block ${index}) is in the signed log: ${signedNote}`),
              statusLine("history-newest", check.state,
                `v${block.version} is ${BY_INDEX} (its root is in the checkpoint).`),
            );
            const last = listed.entries.length ? listed.entries[listed.entries.length - 1] : null;
            if (!last || last.index !== index) {
              lines.push(statusLine("history-listed", "false", "The server's list of versions " +
                `does not end at block ${index}: it is NOT to be believed.`));
            }
          }
        } catch (err) {
          lines.push(statusLine("history-newest", "false",
            `The newest version of ${name} is NOT proven: ${err.message}`));
        }
        box.replaceChildren(box.firstChild, ...lines, ...table());
        return;
      }
      if (listed.entries.length === 0) {
        box.replaceChildren(box.firstChild, statusLine("history-status", "false",
          `No model named ${name} is registered (the server lists no block for it).`));
        return;
      }
      const index = listed.entries[listed.entries.length - 1].index;
      const lines = [];
      try {
        const { block } = await proveEntry(index, cp);
        if (block.name !== name) {
          throw new Error(`its leaf names ${JSON.stringify(block.name)}, not ${name}`);
        }
        lines.push(
          statusLine("history-status", check.state,
            `${name} v${block.version} (block ${index}) is in the signed log: ${signedNote}`),
          statusLine("history-newest", "unknown",
            `v${block.version} is the newest among ${listedNote(listed)} ` +
            `(${NOT_PROVEN_NEWEST}).`),
        );
      } catch (err) {
        lines.push(statusLine("history-status", "false",
          `The server lists block ${index} as the newest version of ${name}, but it is NOT ` +
          `proven: ${err.message}`));
      }
      box.replaceChildren(box.firstChild, ...lines, ...table());
    } catch (err) {
      box.replaceChildren(box.firstChild);
      failure(box, err);
    }
  }

  function valueView(value) {
    if (value === null || value === undefined) return h("span", { class: "muted" }, "none");
    if (typeof value === "object") {
      if (!Array.isArray(value) && Object.keys(value).length === 0) {
        return h("span", { class: "muted" }, "none");
      }
      return h("pre", {}, JSON.stringify(value, null, 2));
    }
    return String(value);
  }

  function fieldsView(block) {
    const shown = new Set(["manifest"]);
    const row = (label, key, render) => {
      shown.add(key);
      if (!(key in block)) return [];
      return [h("dt", {}, label), h("dd", { "data-field": key }, render(block[key]))];
    };
    const hashDd = (v) => h("code", { class: "hash" }, String(v));
    const rows = [
      row("Block", "index", String),
      row("Model", "name", (v) => modelLink(v)),
      row("Version", "version", (v) => `v${v}`),
      row("Digest (SHA-256)", "model_hash", hashDd),
      row("Kind", "kind", String),
      row("Size", "size", (v) => bytesText(Number(v))),
      row("Registered", "timestamp", (v) => `${when(v)} (${v})`),
      row("Previous hash", "previous_hash", hashDd),
      row("Block hash", "current_hash", hashDd),
      row("Metadata", "metadata", valueView),
    ];
    for (const key of Object.keys(block).sort()) {
      if (!shown.has(key)) rows.push([h("dt", {}, key), h("dd", { "data-field": key },
        valueView(block[key]))]);
    }
    return h("dl", { class: "fields", id: "block-fields" }, rows);
  }

  function manifestView(manifest) {
    const files = Array.isArray(manifest) ? manifest : (manifest && manifest.files) || [];
    return scroller(h("table", { id: "manifest" },
      h("caption", {}, `${files.length} file(s)`),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "Path"),
        h("th", { scope: "col", class: "num" }, "Size"),
        h("th", { scope: "col" }, "SHA-256"))),
      h("tbody", {}, files.map((f) => h("tr", {},
        h("td", {}, String(f.path)),
        h("td", { class: "num" }, bytesText(Number(f.size))),
        h("td", { class: "hash" }, String(f.sha256)))))));
  }

  async function entryPage(indexText) {
    if (!/^[0-9]{1,15}$/.test(indexText)) {
      failure(page("Block"), new Error(`${indexText} is not a block number`));
      return;
    }
    const index = Number(indexText);
    const box = page(`Block ${index}`);
    const pending = statusLine("proof-status", "pending", "Checking the inclusion proof…");
    box.append(pending);
    const steps = [];
    const step = (state, text) => steps.push({ state, text });
    let state = "false";
    let message;
    const got = {};
    let check = null;
    try {
      const log = await api("/log");
      check = await checkCheckpoint(log);
      steps.push(...check.steps);
      if (!check.checkpoint) throw new Error("the checkpoint cannot be read");
      const cp = check.checkpoint;
      await proveEntry(index, cp, step, got);
      if (check.state === "true") {
        state = "true";
        message = `Proof verified: block ${index} is in the tree of ${cp.size} blocks whose ` +
          `root is signed by key ${check.key.name}+${check.key.keyIdHex}.`;
      } else if (check.state === "unknown") {
        state = "unknown";
        message = `The proof leads to the checkpoint's root, but ${check.message}`;
      } else {
        message = `Proof NOT verified: ${check.message}`;
      }
    } catch (err) {
      step("false", err.message);
      if (err instanceof NoSuchBlock && check && check.state !== "false") {
        message = `No such block: ${err.message}` +
          (check.state === "true" ? " (a size signed by the log's key)." : ".");
      } else {
        message = `Proof NOT verified: ${err.message}`;
      }
    }
    const entry = got.entry || null;
    const proof = got.proof || null;
    pending.replaceWith(statusLine("proof-status", state, message));
    box.append(stepsList(steps));
    if (entry === null) return;
    const block = blockOf(entry);
    box.append(
      h("nav", { class: "pager", "aria-label": "Neighbouring blocks" },
        index > 0 && h("a", { href: route(`/entry/${index - 1}`), rel: "prev" }, "← Previous"),
        check && check.checkpoint && index + 1 < check.checkpoint.size &&
          h("a", { href: route(`/entry/${index + 1}`), rel: "next" }, "Next →"),
        block.name !== undefined &&
          h("a", { href: route(`/model/${encodeURIComponent(block.name)}`) },
            `History of ${block.name}`)),
      fieldsView(block),
    );
    if (block.kind === "directory" || block.manifest) {
      box.append(h("h2", {}, "Files"), manifestView(block.manifest));
    }
    box.append(
      h("h2", {}, "Leaf data (exact bytes)"),
      h("pre", { id: "leaf-data" }, entry.data),
    );
    if (proof) {
      box.append(
        h("h2", {}, "Inclusion proof"),
        h("ol", { id: "proof-hashes", start: 0, class: "mono" },
          proof.hashes.map((x) => h("li", { class: "hash" }, String(x)))),
      );
    }
  }

  /**
   * The one test of "this is the registered model", as `same_model` in modelchain's
   * checks/verdict.py: the same kind (file or directory) and the same digest. A file holding
   * a directory's manifest JSON has the directory's digest, but is not that directory.
   * `kind` null: a pasted digest, which may be either's.
   */
  function sameModel(block, kind, digest) {
    return block.model_hash === digest && (kind === null || (block.kind || "file") === kind);
  }

  let checkRun = 0;
  const MAX_PROVEN = 20; // matching blocks proven per lookup (newest first)

  /**
   * Is `digest` registered? Green only for a block proven here whose leaf bytes hold this
   * digest; "newest" only ever as "newest listed" unless a later version is proven.
   * `name` (a file's base name, or typed) is used to explain a digest that matches nothing.
   */
  async function checkDigest(digest, out, label, name, kind) {
    const run = ++checkRun;
    const check = await signedTree();
    const cp = check.checkpoint;
    const matches = await searchAll({ digest }, cp.size);
    if (run !== checkRun) return;
    const proven = []; // newest first
    const failed = [];
    const otherKind = []; // proven, this digest, but another kind of model: not this one
    for (const entry of matches.entries.slice().reverse().slice(0, MAX_PROVEN)) {
      try {
        const { block } = await proveEntry(entry.index, cp);
        if (block.model_hash !== digest) {
          throw new Error(`its leaf holds digest ${short(String(block.model_hash))}, not this one`);
        }
        (sameModel(block, kind, digest) ? proven : otherKind).push({ index: entry.index, block });
      } catch (err) {
        failed.push({ index: entry.index, message: err.message });
      }
    }
    if (run !== checkRun) return;
    const shaLine = h("p", { class: "muted hash" }, `SHA-256 ${digest}`);
    if (proven.length === 0) {
      if (failed.length > 0) {
        out.replaceChildren(statusLine("check-status", "false",
          `${label}: NOT proven to be registered: the server lists block ` +
          `${failed[0].index} for this digest, but ${failed[0].message}.`), shaLine);
        return;
      }
      const why = name ? await whyNot(name, digest, check, kind) : { text: "", note: null };
      if (run !== checkRun) return;
      const other = otherKind.map(({ index, block }) =>
        ` Block ${index} (${block.name} v${block.version}, proven) has this digest, but it ` +
        `registers a ${block.kind}, and this is a ${kind}.`).join("");
      out.replaceChildren(
        statusLine("check-status", "false",
          `${label}: not registered (SHA-256 ${digest}).${other}${why.text}`),
        ...(why.note ? [h("p", { class: "muted", id: "check-note" }, why.note)] : []),
      );
      return;
    }
    const newestOf = new Map(); // one history per model name
    const items = [];
    for (const match of proven) {
      const b = match.block;
      if (!newestOf.has(b.name)) {
        try {
          newestOf.set(b.name, await newestListed(b.name, check));
        } catch (err) {
          newestOf.set(b.name, { error: err.message });
        }
      }
      const got = newestOf.get(b.name);
      let newest;
      if (got.error) {
        newest = `; its newest version is NOT proven: ${got.error}`;
      } else if (got.indexed && (!got.newest || got.newest.index < match.index)) {
        newest = "; NOT proven to be the newest: the signed index names no later block of it";
        got.error = "the signed index disagrees with a proven block";
      } else if (!got.newest || got.newest.index <= match.index) {
        newest = `; ${newestNote(got)}`;
      } else {
        newest = [`; not the newest: ${b.name} v${got.newest.block.version} (block `,
          entryLink(got.newest.index), ") is a later version (proven)"];
      }
      items.push(h("li", {}, "registered as ", modelLink(b.name), ` v${b.version} (block `,
        entryLink(match.index), ", proven)", newest));
    }
    for (const bad of failed) {
      items.push(h("li", { class: "bad" }, `block ${bad.index}: NOT proven: ${bad.message}`));
    }
    if (run !== checkRun) return;
    const first = proven[0];
    const how = check.state === "true"
      ? "proven in your browser."
      : "the inclusion proof leads to the checkpoint's root, but its signature was not checked.";
    // a file that is only an older version is no pass, as `modelchain verify` exits 1 for it:
    // amber, naming the later version that was proven
    const later = newestOf.get(first.block.name);
    const superseded = later && !later.error && later.newest && later.newest.index > first.index;
    const verdict = superseded
      ? `${label}: an OLDER version: registered as ${first.block.name} ` +
        `v${first.block.version} (block ${first.index}), and ${first.block.name} ` +
        `v${later.newest.block.version} (block ${later.newest.index}) is later. ` +
        (check.state === "true"
          ? "Both proven in your browser."
          : "Both inclusion proofs lead to the checkpoint's root, but its signature was not " +
            "checked.")
      : `${label}: registered as ${first.block.name} v${first.block.version} ` +
        `(block ${first.index}), ${how}`;
    // with a signed index, green also needs the newest version proven (as `verify` does)
    const unproven = !superseded && indexRoot(cp.extensions) !== null && (!later || later.error);
    out.replaceChildren(
      statusLine("check-status", superseded || unproven ? "unknown" : check.state,
        unproven ? `${verdict} Whether it is the newest version is NOT proven.` : verdict),
      h("ul", { id: "check-matches" }, items),
      ...(matches.entries.length > MAX_PROVEN
        ? [h("p", { class: "muted" }, `The ${MAX_PROVEN} newest of ${matches.entries.length} ` +
          "matching blocks were checked.")]
        : []),
      shaLine,
    );
  }

  /**
   * For a digest that matches nothing: does `name` exist, and which version is it not?
   * Returns text to follow the verdict, and a note on what was not proven.
   */
  async function whyNot(name, digest, check, kind) {
    let got;
    try {
      got = await newestListed(name, check);
    } catch (err) {
      return { text: ` The newest version of a model named ${name} is NOT proven: ` +
        `${err.message}.`, note: null };
    }
    if (!got.newest) {
      const none = got.indexed
        ? ` The signed index proves no model named ${name} is registered either.`
        : ` The server lists no model named ${name} either.`;
      return { text: none, note: null };
    }
    const b = got.newest.block;
    if (sameModel(b, kind, digest)) {
      return { text: ` Yet block ${got.newest.index} (${name} v${b.version}, proven) holds ` +
        "this digest: the server's answers disagree.", note: null };
    }
    if (b.model_hash === digest) return { text: "", note: null }; // named above: another kind
    return {
      text: ` A model named ${name} is registered, but this is not ${name} v${b.version} ` +
        `(block ${got.newest.index}, proven), nor any other version the server listed.`,
      note: `${name} v${b.version} is ${newestNote(got)}.`,
    };
  }

  function checkPage() {
    const box = page("Check a file");
    const out = h("div", { id: "check-result", "aria-live": "polite" });
    const bar = h("progress", { id: "hash-progress", max: 1, value: 0, hidden: true,
      "aria-label": "Hashing progress" });
    const input = h("input", { type: "file", id: "file-input" });
    const drop = h("label", { class: "drop", for: "file-input" },
      h("strong", {}, "Drop a model file here, or choose one"), h("br", {}), input);
    const digestInput = h("input", { type: "text", id: "digest-input", maxlength: 64,
      spellcheck: "false", autocomplete: "off", placeholder: "64 lowercase hex digits" });
    const nameInput = h("input", { type: "text", id: "check-name", maxlength: 256,
      spellcheck: "false", autocomplete: "off", placeholder: "the file's name" });
    const nameRow = h("p", {},
      h("label", { for: "check-name" }, "Registered name (optional) "), nameInput,
      h("br", {}), h("span", { class: "muted" },
        "If the file matches nothing, the page says which version of this model it is not. ",
        "A file's default is its own name, as with ", h("code", {}, "modelchain verify"), "."));
    const form = h("form", { id: "digest-form" },
      h("label", { for: "digest-input" }, "…or paste a SHA-256 digest "), digestInput, " ",
      h("button", { type: "submit" }, "Look up"));
    box.append(
      h("p", { class: "note", id: "privacy" },
        "Your file is hashed here, in your browser, and is never uploaded: only its SHA-256 ",
        "digest is sent, as a lookup (GET /api/v1/search?digest=…), then the matching blocks ",
        "and their proofs are fetched to be checked here. If the digest matches nothing, the ",
        "model name (the file's name unless you type one) is looked up too."),
      nameRow, drop, bar, out, form,
      h("p", { class: "muted" },
        `Files up to ${SUBTLE_LIMIT / 1024 / 1024} MiB are hashed with WebCrypto in one `,
        "piece; larger ones are read in slices by this page's own SHA-256 (slower, any size). ",
        "A model directory's digest is the digest of its manifest: get it with ",
        h("code", {}, "modelchain hash DIR"), " and paste it above."),
    );

    async function onFile(file) {
      if (!file) return;
      const run = ++checkRun;
      out.replaceChildren(statusLine("check-status", "pending", `Hashing ${file.name}…`));
      bar.hidden = false;
      try {
        const digest = await hashFile(file, (done, total) => {
          bar.max = total || 1;
          bar.value = done;
        });
        if (run !== checkRun) return;
        await checkDigest(digest, out, file.name, nameInput.value.trim() || file.name, "file");
      } catch (err) {
        if (run === checkRun) {
          out.replaceChildren(statusLine("check-status", "false", `${file.name}: ${err.message}`));
        }
      } finally {
        bar.hidden = true;
      }
    }

    input.addEventListener("change", () => onFile(input.files[0]));
    for (const type of ["dragenter", "dragover"]) {
      drop.addEventListener(type, (event) => {
        event.preventDefault();
        drop.classList.add("over");
      });
    }
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("over");
      onFile(event.dataTransfer && event.dataTransfer.files[0]);
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const digest = digestInput.value.trim().toLowerCase();
      if (!/^[0-9a-f]{64}$/.test(digest)) {
        out.replaceChildren(statusLine("check-status", "false",
          "A SHA-256 digest is 64 hex digits."));
        return;
      }
      try {
        await checkDigest(digest, out, "That digest", nameInput.value.trim(), null);
      } catch (err) {
        out.replaceChildren(statusLine("check-status", "false", err.message));
      }
    });
  }

  // -- routing ----------------------------------------------------------------------------

  function render() {
    const raw = location.hash.replace(/^#/, "") || "/";
    const [path, query] = raw.split("?", 2);
    const params = new URLSearchParams(query || "");
    const parts = path.split("/").filter(Boolean);
    const section = parts[0] || "home";
    for (const link of document.querySelectorAll("[data-nav]")) {
      if (link.dataset.nav === (section === "entry" ? "entries" : section)) {
        link.setAttribute("aria-current", "page");
      } else {
        link.removeAttribute("aria-current");
      }
    }
    let name;
    try {
      name = parts.length > 1 ? decodeURIComponent(parts.slice(1).join("/")) : "";
    } catch {
      name = parts.slice(1).join("/");
    }
    if (section === "home") return homePage();
    if (section === "entries") return entriesPage(params);
    if (section === "entry" && parts.length === 2) return entryPage(name);
    if (section === "model" && name) return modelPage(name);
    if (section === "check") return checkPage();
    failure(page("Not found"), new Error(`no page ${raw}`));
    return undefined;
  }

  function start() {
    window.addEventListener("hashchange", () => {
      render();
      main().focus({ preventScroll: false });
    });
    document.getElementById("model-search").addEventListener("submit", (event) => {
      event.preventDefault();
      const name = document.getElementById("model-name").value.trim();
      if (name) location.hash = `#/model/${encodeURIComponent(name)}`;
    });
    render();
  }

  // For tests and the curious: the checks this page runs, callable from the console.
  window.modelchainExplorer = Object.freeze({
    Sha256,
    hashFile,
    rootFromInclusionProof,
    verifyInclusion,
    checkCheckpoint,
    indexRoot,
    parseIndexProof,
    verifyIndexProof,
    hex,
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
