/**
 * Docker credential helpers (`docker-credential-<name> get`, as config.json's credHelpers/credsStore name them):
 * the server URL on stdin, `{"ServerURL", "Username", "Secret"}` on stdout. Run through execa with a timeout;
 * what a helper prints is a secret, so it never reaches a log line or a message (only its name and exit code do).
 */
import type { Logger } from '../log.js';

export interface HelperCredential {
  username?: string;
  password?: string;
  identityToken?: string;
}

export const HELPER_TIMEOUT_MS = 10_000;

/** The credential a helper holds for `serverUrl`, or undefined (not found, helper missing or failing: logged). */
export async function runCredentialHelper(name: string, serverUrl: string, log?: Logger,
  timeoutMs = HELPER_TIMEOUT_MS): Promise<HelperCredential | undefined> {
  const program = `docker-credential-${name}`;
  if (!/^[A-Za-z0-9._-]+$/.test(name)) {
    log?.warn({ helper: name }, 'ignoring a credential helper whose name is not a plain program name');
    return undefined;
  }
  // execa is loaded only when a config names a helper: a pull without one stays lean
  const { execa } = await import('execa');
  const r = await execa(program, ['get'], {
    input: serverUrl, timeout: timeoutMs, reject: false, stripFinalNewline: true, extendEnv: true,
    // a credential is a few hundred bytes; a helper that floods is cut off
    maxBuffer: 1 << 20,
  });
  if (r.timedOut) {
    log?.warn({ helper: program, registry: serverUrl, timeoutMs }, 'credential helper timed out; no credentials from it');
    return undefined;
  }
  if (r.exitCode === undefined) {
    const code = (r as { code?: string }).code;
    log?.warn({ helper: program, reason: code }, code === 'ENOENT'
      ? 'credential helper not found in PATH; no credentials from it' : 'credential helper could not run; no credentials from it');
    return undefined;
  }
  if (r.exitCode !== 0) {
    // "credentials not found in native keychain" is the helpers' ordinary miss; the text itself is not logged
    const miss = /credentials not found/i.test(String(r.stdout)) || /credentials not found/i.test(String(r.stderr));
    if (miss) log?.debug({ helper: program, registry: serverUrl }, 'credential helper has no credentials for the registry');
    else log?.warn({ helper: program, registry: serverUrl, exitCode: r.exitCode }, 'credential helper failed; no credentials from it');
    return undefined;
  }
  let doc: { Username?: unknown; Secret?: unknown };
  try {
    doc = JSON.parse(String(r.stdout)) as typeof doc;
  } catch {
    log?.warn({ helper: program, registry: serverUrl }, 'credential helper printed no JSON; no credentials from it');
    return undefined;
  }
  const username = typeof doc.Username === 'string' ? doc.Username : '';
  const secret = typeof doc.Secret === 'string' ? doc.Secret : '';
  if (!secret) return undefined;
  // docker's convention: the user name "<token>" marks an identity token (an OAuth2 refresh token)
  if (username === '<token>') return { identityToken: secret };
  return { username, password: secret };
}
