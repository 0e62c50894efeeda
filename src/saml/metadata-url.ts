import { DomainError, badGateway, invalid } from '../core/errors.ts';
import { webhookTarget, type Resolve } from '../core/webhook-url.ts';
import { getFromAddress } from '../http/pinned-request.ts';
import { parseFetchedIdpMetadata, type IdpMetadata } from './idp-metadata.ts';

/**
 * Fetching an IdP's metadata from the URL an admin gave. An admin chooses the URL and orgsync's
 * network fetches it, so it gets the webhooks' guard against server-side request forgery: every
 * address of the host is checked (private and loopback ones refused unless allowed), the request
 * goes to the checked address, and each redirect (at most MAX_REDIRECTS) is checked again.
 */

export interface MetadataFetchPolicy {
  allowPrivateNetworks: boolean;
  timeoutMs: number;
  maxBytes: number;
  /** Tests play DNS with it. */
  resolve?: Resolve;
}

const PURPOSE = { name: 'metadata URL', setting: 'SAML_METADATA_ALLOW_PRIVATE_NETWORKS' };
const MAX_REDIRECTS = 3;

/**
 * A metadata URL as saved: https (metadata is trusted for its TLS: it is not signed-checked), http
 * only for localhost; no credentials.
 */
export function parseMetadataUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid(`metadataUrl is not a URL: ${JSON.stringify(text)}`);
  }
  const local = /^(localhost|127\.0\.0\.1|\[::1\])$/i.test(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && local))
    throw invalid('metadataUrl must be an https URL (http only for localhost)');
  if (url.username || url.password) throw invalid('metadataUrl must not carry credentials');
  return url;
}

/**
 * Fetches and parses the metadata at `text`. Throws `invalid` (400) for a URL that may not be
 * fetched or metadata that is not acceptable, `bad_gateway` (502) when the server fails, is too
 * slow, answers too much or redirects too often.
 */
export async function fetchIdpMetadata(text: string, policy: MetadataFetchPolicy): Promise<IdpMetadata> {
  let url = parseMetadataUrl(text);
  for (let redirects = 0; ; redirects++) {
    const response = await fetchOnce(url, policy);
    if (response.status >= 300 && response.status < 400 && response.location) {
      if (redirects === MAX_REDIRECTS) throw badGateway(`the metadata URL redirected more than ${MAX_REDIRECTS} times`);
      url = parseMetadataUrl(new URL(response.location, url).href);
      continue;
    }
    if (response.status < 200 || response.status >= 300)
      throw badGateway(`the metadata URL answered HTTP ${response.status}`, { url: url.href });
    return parseFetchedIdpMetadata(response.body.toString('utf8'));
  }
}

async function fetchOnce(url: URL, policy: MetadataFetchPolicy) {
  try {
    const target = await webhookTarget(url, policy, PURPOSE);
    return await getFromAddress(url, target, {
      headers: {
        accept: 'application/samlmetadata+xml, application/xml;q=0.9, text/xml;q=0.8',
        'user-agent': 'orgsync-saml-metadata/1',
      },
      timeoutMs: policy.timeoutMs,
      maxBytes: policy.maxBytes,
    });
  } catch (error) {
    if (error instanceof DomainError) throw error;
    throw badGateway(`cannot fetch the metadata URL ${url.href}: ${(error as Error).message}`);
  }
}
