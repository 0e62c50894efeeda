/** Why a sign-in was refused; recorded in the SSO attempt log and shown on the error page. */
export type RefusalReason =
  | 'oversized'
  | 'xml_too_deep'
  | 'malformed'
  | 'doctype'
  | 'schema_invalid'
  | 'unknown_issuer'
  | 'connection_disabled'
  | 'wrong_issuer'
  | 'status_not_success'
  | 'weak_algorithm'
  | 'signature_wrapping'
  | 'signature_missing'
  | 'signature_invalid'
  | 'unknown_certificate'
  | 'decryption_failed'
  | 'comment_in_assertion'
  | 'wrong_destination'
  | 'wrong_recipient'
  | 'wrong_audience'
  | 'not_yet_valid'
  | 'expired'
  | 'in_response_to_mismatch'
  | 'request_not_from_this_browser'
  | 'unsolicited_response'
  | 'replayed_assertion'
  | 'relay_state_not_allowed'
  | 'no_email'
  | 'ambiguous_identity'
  | 'not_allowed_to_join'
  | 'membership_suspended'
  | 'membership_removed'
  | 'invitation_email_mismatch'
  | 'sso_required';

export class SamlRefusal extends Error {
  /**
   * Set when the refusal came after the assertion's signature verified: the ACS keeps the
   * assertion id consumed in the replay cache, whatever the reason.
   */
  signedAssertion?: { assertionId: string; usableUntil: Date };

  constructor(
    readonly reason: RefusalReason,
    message: string,
    readonly context: { connectionId?: string; idpEntityId?: string; nameId?: string; email?: string } = {},
  ) {
    super(message);
    this.name = 'SamlRefusal';
  }
}

/** Throws a refusal (a function declaration, so TypeScript knows nothing runs after it). */
export function refuse(reason: RefusalReason, message: string): never {
  throw new SamlRefusal(reason, message);
}
