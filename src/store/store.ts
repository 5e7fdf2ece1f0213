import { retry } from '../util/retry.ts';

/**
 * The object-store contract every part of lockstep talks through. It has S3 semantics on purpose:
 * no renames, no locks, no watching, so that what works on the folder store works on S3.
 */
export interface ObjectInfo {
  readonly key: string;
  readonly size: number;
  /** Entity tag as the backend reports it (S3: quoted MD5 for single-part uploads). */
  readonly etag?: string;
  readonly lastModified?: Date;
}

export interface ListOptions {
  /** Keys per page asked of the backend (S3: at most 1000). Tests use small pages. */
  readonly pageSize?: number;
  /** Only keys strictly after this one, in lexicographic order. */
  readonly startAfter?: string;
  /** At most this many keys, the first in key order (S3: one page for up to 1,000). */
  readonly maxKeys?: number;
}

export interface Store {
  /** Where the store lives, as a locator string (`file:///…`, `s3://bucket/prefix?…`). */
  readonly locator: string;
  /**
   * GET requests per second that many clients together may make on one prefix of this store without
   * slowing it down: the barrier paces the polls of all waiting nodes by it.
   */
  readonly readsPerSecond: number;
  /**
   * True where `readsPerSecond` holds for each prefix apart (AWS S3): then copies of a much-read
   * object under distinct prefixes multiply the rate. False for one server's rate in all.
   */
  readonly readRatePerPrefix?: boolean;
  put(key: string, body: Uint8Array | string): Promise<void>;
  /**
   * Writes the object only where the key is free: true when written, false when an object was there.
   * Atomic on the folder store and on S3 (`If-None-Match: *`). Some S3-compatible servers (s3rver)
   * ignore the condition and overwrite: a caller whose first record must stand also reads first.
   */
  putIfAbsent(key: string, body: Uint8Array | string): Promise<boolean>;
  /** Uploads a file by streaming it (multipart for large files on S3). */
  putFile(key: string, path: string): Promise<void>;
  /** The object's bytes, or `undefined` when there is no such key. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Streams the object into a file; `false` when there is no such key. */
  getFile(key: string, path: string): Promise<boolean>;
  /** Every object whose key starts with `prefix`, in key order, all pages read. */
  list(prefix: string, options?: ListOptions): Promise<ObjectInfo[]>;
  /** Removes the object; removing a missing key is not an error. */
  delete(key: string): Promise<void>;
  /**
   * A URL that anyone holding it may GET the object from for `expiresInSeconds` (S3: presigned),
   * for a machine that has no lockstep yet. Stores without one (a folder) leave it out.
   */
  urlFor?(key: string, expiresInSeconds: number): Promise<string>;
  dispose(): Promise<void>;
}

export class StoreError extends Error {
  override readonly name = 'StoreError';
  constructor(
    message: string,
    readonly locator: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** An object key relative to a store's root: no leading `/`, no empty, `.` or `..` parts. Any store. */
export function checkObjectKey(key: string, locator: string): string {
  if (!key || key.startsWith('/') || key.split('/').some((part) => part === '..' || part === '.')) {
    throw new StoreError(`Invalid object key \`${key}\``, locator);
  }
  return key;
}

/**
 * Reads a JSON object. Some S3-compatible servers (s3rver among them) serve an object that is being
 * overwritten half-written, so a body that does not parse is read again a few times before failing.
 */
export async function getJson<T>(store: Store, key: string): Promise<T | undefined> {
  try {
    return await retry(
      async () => {
        const bytes = await store.get(key);
        return bytes === undefined ? undefined : (JSON.parse(Buffer.from(bytes).toString('utf8')) as T);
      },
      { attempts: 5, baseDelayMs: 40, retryable: (error) => error instanceof SyntaxError },
    );
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    throw new StoreError(`Object ${key} is not valid JSON: ${error.message}`, store.locator, { cause: error });
  }
}

export async function putJson(store: Store, key: string, value: unknown): Promise<void> {
  await store.put(key, JSON.stringify(value, null, 2) + '\n');
}
