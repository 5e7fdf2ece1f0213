/**
 * The EC2 instance tags lockstep sets and the agent reads back through instance metadata
 * (`/latest/meta-data/tags/instance/<key>`). Pure: no AWS SDK here, the agent imports this file.
 *
 * Tag keys readable from instance metadata may hold only `a-zA-Z0-9 + - = . , _ : @`.
 * Tag values: at most 256 characters; lockstep keeps to the set every AWS service accepts
 * (letters, digits, spaces and `+ - = . _ : / @`) and base64url-encodes anything else.
 */
export const TAG = {
  name: 'Name',
  runId: 'lockstep:run-id',
  spec: 'lockstep:spec',
  expiresAt: 'lockstep:expires-at',
  store: 'lockstep:store',
  addressKind: 'lockstep:address-kind',
} as const;

export type AddressKind = 'private' | 'public';

export const TAG_VALUE_MAX = 256;
const METADATA_TAG_KEY = /^[A-Za-z0-9+\-=.,_:@]{1,128}$/;
const PLAIN_VALUE = /^[A-Za-z0-9 +\-=._:/@]*$/;
const ENCODED = 'b64u:';

/** True for a key that instance metadata can serve (launches fail otherwise). */
export function isMetadataTagKey(key: string): boolean {
  return METADATA_TAG_KEY.test(key) && key !== '.' && key !== '..' && key !== '_index';
}

/**
 * A tag value for `value`: itself when it uses only the portable characters, else `b64u:` and its
 * base64url form. Returns `undefined` when the result would exceed 256 characters.
 */
export function encodeTagValue(value: string): string | undefined {
  const encoded =
    PLAIN_VALUE.test(value) && !value.startsWith(ENCODED) ? value : ENCODED + Buffer.from(value, 'utf8').toString('base64url');
  return encoded.length <= TAG_VALUE_MAX ? encoded : undefined;
}

export function decodeTagValue(value: string): string {
  return value.startsWith(ENCODED) ? Buffer.from(value.slice(ENCODED.length), 'base64url').toString('utf8') : value;
}
