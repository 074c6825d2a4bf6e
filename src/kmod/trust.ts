/** What a node trusts, as the module checks (verdicts.ts) need it; host/module-signing.ts reads it from a node. */

export interface SignatureEnforcement {
  enforced: boolean;
  /** what the node showed, e.g. `sig_enforce=Y`, `lockdown=integrity`, `Secure Boot on` */
  facts: string[];
}

export interface TrustedKey {
  /** the certificate's subject as the kernel names keys (CN, or "O: CN") */
  name: string;
  /** upper-case hex: the subject key identifier (or the serial number when the cert has none) */
  keyId: string;
  /** only known from a certificate file (preflight --trusted-keys): then the match is exact */
  cert?: { issuer: string; serial: string };
}
