import type { Writable } from 'node:stream';
import type { Logger, LogFormat } from './log.js';

/** The global options of README.md "Global options", resolved from flags, environment and defaults. */
export interface GlobalOptions {
  /** the node's own paths (/proc, /sys, /lib/modules, host firmware dir, /etc/...) resolve under it */
  hostRoot: string;
  modprobe: string;
  modinfo: string;
  depmod: string;
  imagesDir: string;
  sharedDir: string;
  pullSecretsDir: string;
  authFile: string | undefined;
  dryRun: boolean;
  nodeName: string | undefined;
  report: 'auto' | 'off';
  moduleNamespace: string | undefined;
  moduleName: string | undefined;
  logLevel: string;
  logFormat: LogFormat | undefined;
}

/** What every command receives: options, a logger (stderr), stdout for machine output, and a stop signal. */
export interface Context {
  opts: GlobalOptions;
  log: Logger;
  stdout: Writable;
  /** aborted on SIGINT/SIGTERM; the reason is an InterruptedError */
  signal: AbortSignal;
}
