import type { Store } from './store.ts';

export type RequestKind = 'put' | 'get' | 'list' | 'delete';

export type RequestCounts = Record<RequestKind, number>;

export const noRequests = (): RequestCounts => ({ put: 0, get: 0, list: 0, delete: 0 });

/** S3 returns at most this many keys per LIST page, and bills each page as one request. */
const LIST_PAGE = 1000;

/**
 * The store, counting its requests as S3 bills them (a LIST of 2,500 keys is 3 requests; a file
 * upload or download is one). The counts are live: read them whenever. For benchmarks and tests.
 */
export function countingStore(store: Store, counts: RequestCounts = noRequests()): Store & { readonly counts: RequestCounts } {
  return {
    counts,
    locator: store.locator,
    readsPerSecond: store.readsPerSecond,
    readRatePerPrefix: store.readRatePerPrefix,
    put: (key, body) => {
      counts.put++;
      return store.put(key, body);
    },
    putIfAbsent: (key, body) => {
      counts.put++;
      return store.putIfAbsent(key, body);
    },
    putFile: (key, path) => {
      counts.put++;
      return store.putFile(key, path);
    },
    get: (key) => {
      counts.get++;
      return store.get(key);
    },
    getFile: (key, path) => {
      counts.get++;
      return store.getFile(key, path);
    },
    list: async (prefix, options) => {
      const listed = await store.list(prefix, options);
      counts.list += Math.max(1, Math.ceil(listed.length / Math.min(LIST_PAGE, options?.pageSize ?? LIST_PAGE)));
      return listed;
    },
    delete: (key) => {
      counts.delete++;
      return store.delete(key);
    },
    ...(store.urlFor ? { urlFor: store.urlFor.bind(store) } : {}),
    dispose: () => store.dispose(),
  };
}
