// A HyperLogLog that holds, byte for byte, the string Redis 7 keeps for one (what GET returns):
// the embedded mode stores the same bytes in PostgreSQL as the Redis mode, a database moves
// between the modes, and PFCOUNT gives the same answer on either side.
//
// Redis's sparse encoding is not a function of the registers alone: where a register update
// splits an opcode, and which neighbouring VAL opcodes then merge, depends on the order of the
// updates. So the sparse bytes are kept and updated the way hllSparseSet (src/hyperloglog.c,
// Redis 7.0) does, including its promotion to the dense encoding, rather than re-encoded from
// the registers. The cached cardinality in the header behaves as PFADD and PFCOUNT leave it.
//
// Layout (src/hyperloglog.c): "HYLL", encoding (0 dense, 1 sparse), 3 unused bytes, cached
// cardinality (64-bit little endian, top bit set = stale), then the registers: dense as 16384
// 6-bit fields packed from the least significant bit, sparse as run-length opcodes
// ZERO 00xxxxxx (1..64 zeros), XZERO 01xxxxxx yyyyyyyy (1..16384 zeros), VAL 1vvvvvxx (1..4
// registers of value 1..32).

const P = 14;
const REGISTERS = 1 << P;
const INDEX_MASK = REGISTERS - 1;
/** Hash bits left for the run of zeros; a register holds at most Q + 1. */
const Q = 64 - P;
const HEADER_BYTES = 16;
const DENSE_BYTES = HEADER_BYTES + (REGISTERS * 6) / 8;
const ENCODING_BYTE = 4;
const DENSE = 0;
const SPARSE = 1;
const CACHE_BYTE = 8;
/** Byte holding the cache's top bit, set while the cached cardinality is stale. */
const CACHE_FLAG_BYTE = 15;
const CACHE_STALE = 0x80;
/** Redis's hll-sparse-max-bytes default: a sparse string never grows past it (header included). */
const SPARSE_MAX_BYTES = 3000;
const SPARSE_VAL_MAX_VALUE = 32;
const SPARSE_VAL_MAX_LEN = 4;
const SPARSE_ZERO_MAX_LEN = 64;
/** Redis reserves this many bytes before a sparse update (an XZERO split into XZERO VAL XZERO). */
const SPARSE_UPDATE_GROWTH = 3;
const SPARSE_INITIAL_CAPACITY = 64;

const MURMUR_SEED = 0xadc83b19;
const ALPHA_INF = 0.7213475204444817; // 0.5 / ln(2), as precise as a double holds it

/** A HyperLogLog with Redis's hash, registers, encodings and PFCOUNT estimator. */
export class HyperLogLog {
  /** Redis's string value; while sparse it has room to grow past `length`. */
  private image: Uint8Array;
  private length: number;

  /** An empty HyperLogLog, as PFADD creates the key (sparse, cached cardinality stale). */
  constructor() {
    this.image = new Uint8Array(SPARSE_INITIAL_CAPACITY);
    this.image.set(MAGIC);
    this.image[ENCODING_BYTE] = SPARSE;
    this.image[CACHE_FLAG_BYTE] = CACHE_STALE;
    writeZeroRun(this.image, HEADER_BYTES, REGISTERS);
    this.length = HEADER_BYTES + 2;
  }

  /** Decodes a value of Redis's GET; throws unless it is a whole dense or sparse HyperLogLog. */
  static fromBytes(bytes: Uint8Array): HyperLogLog {
    if (bytes.length < HEADER_BYTES) throw new Error(`A HyperLogLog has a ${HEADER_BYTES}-byte header; got ${bytes.length} bytes`);
    for (let i = 0; i < MAGIC.length; i++) {
      if (bytes[i] !== MAGIC[i]) throw new Error('Not a HyperLogLog: the value does not start with "HYLL"');
    }
    const encoding = bytes[ENCODING_BYTE];
    if (encoding === DENSE) {
      if (bytes.length !== DENSE_BYTES) throw new Error(`A dense HyperLogLog has ${DENSE_BYTES} bytes; got ${bytes.length}`);
    } else if (encoding === SPARSE) {
      checkSparseRegisters(bytes);
    } else {
      throw new Error(`Unknown HyperLogLog encoding ${encoding}`);
    }
    const hll = new HyperLogLog();
    hll.image = new Uint8Array(encoding === DENSE ? DENSE_BYTES : bytes.length + SPARSE_UPDATE_GROWTH);
    hll.image.set(bytes);
    hll.length = bytes.length;
    return hll;
  }

  /**
   * Adds a member (its UTF-8 bytes, as Redis receives a string); true when a register grew, as
   * PFADD's reply for one member. PFADD also replies 1 when it creates the key: that is the
   * caller's to add, since it knows whether the key existed.
   */
  add(member: string): boolean {
    const count = hashMember(member);
    const index = hashIndex;
    const changed = this.image[ENCODING_BYTE] === DENSE ? setDenseRegister(this.image, index, count) : this.setSparseRegister(index, count);
    if (changed) this.image[CACHE_FLAG_BYTE]! |= CACHE_STALE;
    return changed;
  }

  /**
   * PFCOUNT of this HyperLogLog alone: the cached cardinality while it is fresh, else the
   * estimate, which is then cached in the header as Redis does (so the bytes change).
   */
  count(): number {
    const b = this.image;
    if ((b[CACHE_FLAG_BYTE]! & CACHE_STALE) === 0) return readUint64(b, CACHE_BYTE);
    histogram.fill(0);
    if (b[ENCODING_BYTE] === DENSE) addDenseToHistogram(b);
    else addSparseToHistogram(b, this.length);
    const cardinality = estimate(histogram);
    writeUint64(b, CACHE_BYTE, cardinality);
    return cardinality;
  }

  /** The 16384 register values, one per byte. */
  registers(): Uint8Array {
    const registers = new Uint8Array(REGISTERS);
    this.mergeInto(registers);
    return registers;
  }

  /** The bytes Redis would hold for this HyperLogLog (what GET returns, and SET accepts). */
  toBytes(): Buffer {
    return Buffer.from(this.image.subarray(0, this.length));
  }

  /** Raises each of `registers` (16384, one per byte) to this HyperLogLog's where that is higher. */
  mergeInto(registers: Uint8Array): void {
    const b = this.image;
    if (b[ENCODING_BYTE] === DENSE) {
      for (let i = 0; i < REGISTERS; i++) {
        const value = getDenseRegister(b, i);
        if (value > registers[i]!) registers[i] = value;
      }
      return;
    }
    let index = 0;
    for (let p = HEADER_BYTES; p < this.length; ) {
      const op = b[p]!;
      if (op & 0x80) {
        const value = valValue(op);
        for (let end = index + valLength(op); index < end; index++) {
          if (value > registers[index]!) registers[index] = value;
        }
        p++;
      } else if (op & 0x40) {
        index += xzeroLength(op, b[p + 1]!);
        p += 2;
      } else {
        index += zeroLength(op);
        p++;
      }
    }
  }

  // The steps below are hllSparseSet's, in its order: the exact bytes depend on them.
  private setSparseRegister(index: number, count: number): boolean {
    if (count > SPARSE_VAL_MAX_VALUE) return this.promoteAndSet(index, count);
    this.reserve(this.length + SPARSE_UPDATE_GROWTH);
    const b = this.image;
    let end = this.length;

    // Find the opcode covering the register.
    let p = HEADER_BYTES;
    let first = 0;
    let prev = -1;
    let span = 0;
    let opLength = 1;
    for (; p < end; prev = p, p += opLength, first += span) {
      const op = b[p]!;
      opLength = 1;
      if ((op & 0xc0) === 0) span = zeroLength(op);
      else if (op & 0x80) span = valLength(op);
      else {
        span = xzeroLength(op, b[p + 1]!);
        opLength = 2;
      }
      if (index <= first + span - 1) break;
    }
    if (p >= end) throw new Error('Sparse HyperLogLog covers fewer than 16384 registers');
    const op = b[p]!;
    const isVal = (op & 0x80) !== 0;
    const isXzero = !isVal && (op & 0x40) !== 0;
    if (isVal && valValue(op) >= count) return false;

    if (span === 1 && !isXzero) {
      // A ZERO or VAL of one register: the opcode is replaced in place.
      b[p] = valOpcode(count, 1);
    } else {
      // Split the opcode into at most three: what precedes the register, the register, the rest.
      const last = first + span - 1;
      let n = 0;
      if (isVal) {
        const value = valValue(op);
        if (index !== first) sequence[n++] = valOpcode(value, index - first);
        sequence[n++] = valOpcode(count, 1);
        if (index !== last) sequence[n++] = valOpcode(value, last - index);
      } else {
        if (index !== first) n = writeZeroRun(sequence, n, index - first);
        sequence[n++] = valOpcode(count, 1);
        if (index !== last) n = writeZeroRun(sequence, n, last - index);
      }
      const growth = n - opLength;
      if (growth > 0 && this.length + growth > SPARSE_MAX_BYTES) return this.promoteAndSet(index, count);
      const next = p + opLength;
      if (growth !== 0 && next < end) b.copyWithin(next + growth, next, end);
      for (let i = 0; i < n; i++) b[p + i] = sequence[i]!;
      end += growth;
    }

    // Merge adjacent VAL opcodes of equal value, scanning up to 5 opcodes from the previous one.
    let q = prev >= 0 ? prev : HEADER_BYTES;
    for (let scan = 5; q < end && scan > 0; scan--) {
      const a = b[q]!;
      if ((a & 0xc0) === 0x40) {
        q += 2;
        continue;
      }
      if ((a & 0xc0) === 0) {
        q++;
        continue;
      }
      if (q + 1 < end) {
        const c = b[q + 1]!;
        if (c & 0x80 && valValue(a) === valValue(c)) {
          const length = valLength(a) + valLength(c);
          if (length <= SPARSE_VAL_MAX_LEN) {
            b[q + 1] = valOpcode(valValue(a), length);
            b.copyWithin(q, q + 1, end);
            end--;
            // Stay on the merged opcode: it may merge with the next one too.
            continue;
          }
        }
      }
      q++;
    }
    this.length = end;
    return true;
  }

  /** hllSparseToDense, then the register set that did not fit the sparse encoding. */
  private promoteAndSet(index: number, count: number): boolean {
    const dense = new Uint8Array(DENSE_BYTES);
    dense.set(this.image.subarray(0, HEADER_BYTES));
    dense[ENCODING_BYTE] = DENSE;
    const sparse = this.image;
    let register = 0;
    for (let p = HEADER_BYTES; p < this.length; ) {
      const op = sparse[p]!;
      if (op & 0x80) {
        const value = valValue(op);
        for (let end = register + valLength(op); register < end; register++) setDenseRegister(dense, register, value);
        p++;
      } else if (op & 0x40) {
        register += xzeroLength(op, sparse[p + 1]!);
        p += 2;
      } else {
        register += zeroLength(op);
        p++;
      }
    }
    this.image = dense;
    this.length = DENSE_BYTES;
    return setDenseRegister(dense, index, count);
  }

  private reserve(capacity: number): void {
    if (capacity <= this.image.length) return;
    const grown = new Uint8Array(Math.max(capacity, Math.min(this.image.length * 2, SPARSE_MAX_BYTES + SPARSE_UPDATE_GROWTH)));
    grown.set(this.image.subarray(0, this.length));
    this.image = grown;
  }
}

/**
 * PFCOUNT of these HyperLogLogs: one alone uses and refreshes its cached cardinality (see
 * `count()`); several give the cardinality of their union and leave every cache as it was.
 * `undefined` stands for a key that does not exist (an empty HyperLogLog), as PFCOUNT takes it.
 */
export function count(...hlls: (HyperLogLog | undefined)[]): number {
  if (hlls.length === 1) return hlls[0]?.count() ?? 0;
  unionRegisters.fill(0);
  for (const hll of hlls) hll?.mergeInto(unionRegisters);
  histogram.fill(0);
  for (let i = 0; i < REGISTERS; i++) histogram[unionRegisters[i]!]!++;
  return estimate(histogram);
}

const MAGIC = new Uint8Array([0x48, 0x59, 0x4c, 0x4c]); // "HYLL"

// Scratch space reused by every call, so that adding and counting allocate nothing.
let memberBytes = Buffer.allocUnsafe(256);
const sequence = new Uint8Array(5);
const histogram = new Int32Array(64);
const unionRegisters = new Uint8Array(REGISTERS);

/** Throws unless the sparse opcodes after the header cover exactly the 16384 registers. */
function checkSparseRegisters(bytes: Uint8Array): void {
  let registers = 0;
  for (let p = HEADER_BYTES; p < bytes.length; ) {
    const op = bytes[p]!;
    if (op & 0x80) {
      registers += valLength(op);
      p++;
    } else if (op & 0x40) {
      if (p + 1 >= bytes.length) throw new Error('Sparse HyperLogLog ends inside an XZERO opcode');
      registers += xzeroLength(op, bytes[p + 1]!);
      p += 2;
    } else {
      registers += zeroLength(op);
      p++;
    }
    if (registers > REGISTERS) throw new Error('Sparse HyperLogLog covers more than 16384 registers');
  }
  if (registers !== REGISTERS) throw new Error(`Sparse HyperLogLog covers ${registers} registers, not 16384`);
}

const zeroLength = (op: number): number => (op & 0x3f) + 1;
const xzeroLength = (op: number, low: number): number => (((op & 0x3f) << 8) | low) + 1;
const valValue = (op: number): number => ((op >> 2) & 0x1f) + 1;
const valLength = (op: number): number => (op & 0x3) + 1;
const valOpcode = (value: number, length: number): number => 0x80 | ((value - 1) << 2) | (length - 1);

/** Writes the ZERO (up to 64) or XZERO opcode for a run of zeros; returns the next offset. */
function writeZeroRun(bytes: Uint8Array, at: number, length: number): number {
  if (length > SPARSE_ZERO_MAX_LEN) {
    bytes[at] = 0x40 | ((length - 1) >> 8);
    bytes[at + 1] = (length - 1) & 0xff;
    return at + 2;
  }
  bytes[at] = length - 1;
  return at + 1;
}

function getDenseRegister(image: Uint8Array, index: number): number {
  const at = HEADER_BYTES + ((index * 6) >> 3);
  const shift = (index * 6) & 7;
  return ((image[at]! >> shift) | (image[at + 1]! << (8 - shift))) & 63;
}

/** Raises the register to `count` if it is lower; true when it did. */
function setDenseRegister(image: Uint8Array, index: number, count: number): boolean {
  const at = HEADER_BYTES + ((index * 6) >> 3);
  const shift = (index * 6) & 7;
  const low = image[at]!;
  const high = image[at + 1]!;
  if (count <= (((low >> shift) | (high << (8 - shift))) & 63)) return false;
  image[at] = (low & ~(63 << shift)) | (count << shift);
  image[at + 1] = (high & ~(63 >> (8 - shift))) | (count >> (8 - shift));
  return true;
}

/** Four registers per three bytes. */
function addDenseToHistogram(image: Uint8Array): void {
  for (let at = HEADER_BYTES; at < DENSE_BYTES; at += 3) {
    const r0 = image[at]!;
    const r1 = image[at + 1]!;
    const r2 = image[at + 2]!;
    histogram[r0 & 63]!++;
    histogram[((r0 >> 6) | (r1 << 2)) & 63]!++;
    histogram[((r1 >> 4) | (r2 << 4)) & 63]!++;
    histogram[r2 >> 2]!++;
  }
}

function addSparseToHistogram(image: Uint8Array, length: number): void {
  for (let p = HEADER_BYTES; p < length; ) {
    const op = image[p]!;
    if (op & 0x80) {
      histogram[valValue(op)]! += valLength(op);
      p++;
    } else if (op & 0x40) {
      histogram[0]! += xzeroLength(op, image[p + 1]!);
      p += 2;
    } else {
      histogram[0]! += zeroLength(op);
      p++;
    }
  }
}

/** hllCount's estimator (Otmar Ertl, arXiv:1702.01284), step for step so the rounding agrees. */
function estimate(registerHistogram: Int32Array): number {
  const m = REGISTERS;
  let z = m * tau((m - registerHistogram[Q + 1]!) / m);
  for (let j = Q; j >= 1; j--) {
    z += registerHistogram[j]!;
    z *= 0.5;
  }
  z += m * sigma(registerHistogram[0]! / m);
  return Math.round((ALPHA_INF * m * m) / z);
}

function sigma(x: number): number {
  if (x === 1) return Infinity;
  let y = 1;
  let z = x;
  let previous: number;
  do {
    x *= x;
    previous = z;
    z += x * y;
    y += y;
  } while (previous !== z);
  return z;
}

function tau(x: number): number {
  if (x === 0 || x === 1) return 0;
  let y = 1;
  let z = 1 - x;
  let previous: number;
  do {
    x = Math.sqrt(x);
    previous = z;
    y *= 0.5;
    // Redis writes pow(1 - x, 2), which the compiler turns into this product.
    const d = 1 - x;
    z -= d * d * y;
  } while (previous !== z);
  return z / 3;
}

/** Little endian; as a signed 32-bit integer, which bit operations take as they are. */
function readInt32(bytes: Uint8Array, at: number): number {
  return bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24);
}

function readUint64(bytes: Uint8Array, at: number): number {
  return (readInt32(bytes, at + 4) >>> 0) * 0x1_0000_0000 + (readInt32(bytes, at) >>> 0);
}

function writeUint64(bytes: Uint8Array, at: number, value: number): void {
  const low = value % 0x1_0000_0000;
  const high = Math.floor(value / 0x1_0000_0000);
  for (let i = 0; i < 4; i++) {
    bytes[at + i] = (low >>> (8 * i)) & 0xff;
    bytes[at + 4 + i] = (high >>> (8 * i)) & 0xff;
  }
}

// MurmurHash64A over 64-bit values held as two 32-bit halves (BigInt would allocate per step).

const M_HIGH = 0xc6a4a793;
const M_LOW = 0x5bd1e995;
const M_LOW_0 = M_LOW & 0xffff;
const M_LOW_1 = M_LOW >>> 16;

let productHigh = 0;
let productLow = 0;
/** The register index of the member last hashed by `hashMember`. */
let hashIndex = 0;

/** (high, low) × m modulo 2^64, into productHigh / productLow. */
function multiplyByM(high: number, low: number): void {
  const a0 = low & 0xffff;
  const a1 = low >>> 16;
  const p00 = a0 * M_LOW_0;
  const p01 = a0 * M_LOW_1;
  const p10 = a1 * M_LOW_0;
  const middle = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  productLow = ((middle << 16) | (p00 & 0xffff)) >>> 0;
  const carry = a1 * M_LOW_1 + (p01 >>> 16) + (p10 >>> 16) + (middle >>> 16);
  productHigh = (carry + Math.imul(low, M_HIGH) + Math.imul(high, M_LOW)) >>> 0;
}

/**
 * hllPatLen: hashes the member's UTF-8 bytes with MurmurHash64A (seed 0xadc83b19), leaves the
 * register index (the low 14 bits) in hashIndex and returns the register value: the position of
 * the lowest set bit above them, counting from 1, at most Q + 1.
 */
function hashMember(member: string): number {
  const length = encodeMember(member);
  const data = memberBytes;

  multiplyByM(0, length);
  let high = productHigh;
  let low = (productLow ^ MURMUR_SEED) >>> 0;
  const body = length - (length & 7);
  for (let i = 0; i < body; i += 8) {
    multiplyByM(readInt32(data, i + 4), readInt32(data, i));
    multiplyByM(productHigh, productLow ^ (productHigh >>> 15));
    multiplyByM(high ^ productHigh, low ^ productLow);
    high = productHigh;
    low = productLow;
  }
  const rest = length & 7;
  if (rest > 0) {
    for (let i = rest - 1; i >= 4; i--) high ^= data[body + i]! << (8 * (i - 4));
    for (let i = Math.min(rest, 4) - 1; i >= 0; i--) low ^= data[body + i]! << (8 * i);
    multiplyByM(high, low);
    high = productHigh;
    low = productLow;
  }
  low ^= high >>> 15;
  multiplyByM(high, low);
  high = productHigh;
  low = productLow ^ (productHigh >>> 15);

  hashIndex = low & INDEX_MASK;
  // The 32 bits above the index, then the 18 above those with a stop bit at Q.
  const next = (low >>> P) | (high << (32 - P));
  if (next !== 0) return 1 + trailingZeros(next);
  return 33 + trailingZeros((high >>> P) | (1 << (Q - 32)));
}

/** Writes the member's UTF-8 bytes to memberBytes; returns how many. */
function encodeMember(member: string): number {
  const units = member.length;
  // A UTF-16 unit never takes more than 3 bytes in UTF-8.
  if (units * 3 > memberBytes.length) memberBytes = Buffer.allocUnsafe(units * 3);
  // Visitor ids are ASCII as a rule, and copying them is quicker than calling the encoder.
  for (let i = 0; i < units; i++) {
    const unit = member.charCodeAt(i);
    if (unit >= 0x80) return memberBytes.write(member, 0, 'utf8');
    memberBytes[i] = unit;
  }
  return units;
}

function trailingZeros(x: number): number {
  return 31 - Math.clz32(x & -x);
}
