/**
 * The per-module result in the shape of PreflightValidationOCP `.status.modules[]` (KMM v1beta2
 * PreflightValidationModuleStatus): a finished check is stage `Done` with `Success` or `Failure`; a check that
 * did not finish (interrupted) stays `InProgress` at stage `Image`, as KMM shows it while it works.
 */
export type VerificationStatus = 'Success' | 'Failure' | 'InProgress';
export type VerificationStage = 'Image' | 'Done';

export interface ModuleStatus {
  name: string;
  namespace: string;
  verificationStage: VerificationStage;
  verificationStatus: VerificationStatus;
  statusReason: string;
  /** RFC 3339, seconds precision, UTC (metav1.Time) */
  lastTransitionTime: string;
}

export interface PreflightReport {
  kernelVersion: string;
  modules: ModuleStatus[];
}

export function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function moduleStatus(
  id: { name: string; namespace: string },
  status: VerificationStatus,
  reason: string,
  now: Date,
): ModuleStatus {
  return {
    name: id.name,
    namespace: id.namespace,
    verificationStage: status === 'InProgress' ? 'Image' : 'Done',
    verificationStatus: status,
    statusReason: reason,
    lastTransitionTime: rfc3339(now),
  };
}

/** Stable order for output and status: namespace, then name. */
export function byNamespaceAndName(a: { namespace: string; name: string }, b: { namespace: string; name: string }): number {
  return a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * Merges new results into a PreflightValidationOCP's existing list (keyed by namespace/name, as the CRD's
 * listType=map): other modules' entries are kept, and an entry whose stage and status did not change keeps
 * its lastTransitionTime — the time the status last transitioned, per the API conventions.
 */
export function mergeModuleStatuses(existing: readonly unknown[], updates: readonly ModuleStatus[]): ModuleStatus[] {
  const key = (m: { namespace: string; name: string }) => `${m.namespace}/${m.name}`;
  const merged = new Map<string, ModuleStatus>();
  for (const raw of existing) {
    const m = raw as Partial<ModuleStatus>;
    if (typeof m?.name === 'string' && typeof m.namespace === 'string') merged.set(key(m as ModuleStatus), m as ModuleStatus);
  }
  for (const u of updates) {
    const before = merged.get(key(u));
    const unchanged =
      before !== undefined &&
      before.verificationStatus === u.verificationStatus &&
      before.verificationStage === u.verificationStage &&
      typeof before.lastTransitionTime === 'string';
    merged.set(key(u), unchanged ? { ...u, lastTransitionTime: before.lastTransitionTime } : u);
  }
  return [...merged.values()].sort(byNamespaceAndName);
}
