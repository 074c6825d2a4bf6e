/** What the load/unload flows tell the cluster (docs/reporting.md). A Reporter never throws and never changes an outcome. */
export type ReportReason = 'ModuleLoaded' | 'ModuleUnloaded' | 'ModuleLoadFailed' | 'ModuleUnloadFailed';

export interface ModuleEvent {
  reason: ReportReason;
  type: 'Normal' | 'Warning';
  message: string;
}

export interface Reporter {
  report(event: ModuleEvent): Promise<void>;
}

export const noReporter: Reporter = { report: async () => {} };
