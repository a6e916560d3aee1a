// Crossplane's Usage controller (crossplane v2.3.0 internal/controller/protection/usage/
// reconciler.go): a Usage labels the used resource in-use (so the deletion webhook guards
// it); a composed Usage being deleted waits, polling every 30 s, until the using resource
// is gone; then the label is removed when no other Usage remains, and with replayDeletion
// a recorded deletion attempt of the used resource is replayed (2 s later).
import { SECOND, type VirtualClock } from '../core/clock.js';
import { str } from '../core/json.js';
import { Controller, type Result } from '../core/queue.js';
import { isApiError, keyOf, refOf, type Ref, type Store } from '../core/store.js';
import { DELETION_ATTEMPT, IN_USE_LABEL, USAGE_API_VERSION } from './admission.js';

const FINALIZER = 'usage.apiextensions.crossplane.io';
const WAIT_POLL = 30 * SECOND;

export class UsageController {
  readonly queue: Controller;

  constructor(
    private readonly clock: VirtualClock,
    private readonly store: Store,
    /** apiVersion of a kind, for resourceRefs that name only the kind. */
    private readonly apiVersionOf: (kind: string) => string,
  ) {
    this.queue = new Controller(clock, 'usage', (k) => this.reconcile(k));
    store.watch((ev) => {
      if (ev.obj.kind === 'Usage' && ev.obj.apiVersion === USAGE_API_VERSION) {
        this.queue.enqueue(keyOf(refOf(ev.obj)));
      }
    });
  }

  private async reconcile(key: string): Promise<Result> {
    await Promise.resolve();
    const [, , namespace, name] = key.split('/');
    const u = this.store.get({
      apiVersion: USAGE_API_VERSION,
      kind: 'Usage',
      name: name ?? '',
      namespace,
    });
    if (!u) return {};
    const ofKind = str(u, 'spec', 'of', 'kind') ?? '';
    const of: Ref = {
      apiVersion: str(u, 'spec', 'of', 'apiVersion') ?? this.apiVersionOf(ofKind),
      kind: ofKind,
      name: str(u, 'spec', 'of', 'resourceRef', 'name') ?? '',
      namespace,
    };
    if (u.metadata.deletionTimestamp !== undefined) {
      const byKind = str(u, 'spec', 'by', 'kind');
      if (byKind !== undefined && u.metadata.labels?.['crossplane.io/composite'] !== undefined) {
        const by = this.store.get({
          apiVersion: str(u, 'spec', 'by', 'apiVersion') ?? this.apiVersionOf(byKind),
          kind: byKind,
          name: str(u, 'spec', 'by', 'resourceRef', 'name') ?? '',
          namespace,
        });
        if (by) return { requeueAfter: WAIT_POLL };
      }
      const used = this.store.get(of);
      if (used) {
        const others = this.store
          .list(USAGE_API_VERSION, 'Usage', { namespace })
          .filter(
            (x) =>
              x.metadata.uid !== u.metadata.uid &&
              str(x, 'spec', 'of', 'kind') === of.kind &&
              str(x, 'spec', 'of', 'resourceRef', 'name') === of.name,
          );
        if (others.length === 0 && used.metadata.labels?.[IN_USE_LABEL] !== undefined) {
          const labels = { ...used.metadata.labels };
          Reflect.deleteProperty(labels, IN_USE_LABEL);
          used.metadata.labels = labels;
          this.store.update(used, 'crossplane-usage');
        }
        const policy = used.metadata.annotations?.[DELETION_ATTEMPT];
        if (
          (u['spec'] as { replayDeletion?: boolean } | undefined)?.replayDeletion === true &&
          policy !== undefined
        ) {
          this.clock.schedule(2 * SECOND, `usage replays deletion of ${of.kind} ${of.name}`, () => {
            try {
              this.store.delete(of, policy === 'Orphan' ? 'Orphan' : 'Background');
            } catch (err) {
              if (!isApiError(err)) throw err;
            }
          });
        }
      }
      u.metadata.finalizers = (u.metadata.finalizers ?? []).filter((f) => f !== FINALIZER);
      this.store.update(u, 'crossplane-usage');
      return {};
    }
    if (!(u.metadata.finalizers ?? []).includes(FINALIZER)) {
      u.metadata.finalizers = [...(u.metadata.finalizers ?? []), FINALIZER];
      this.store.update(u, 'crossplane-usage');
    }
    const used = this.store.get(of);
    if (used && used.metadata.labels?.[IN_USE_LABEL] !== 'true') {
      used.metadata.labels = { ...(used.metadata.labels ?? {}), [IN_USE_LABEL]: 'true' };
      this.store.update(used, 'crossplane-usage');
    }
    return { requeueAfter: 60 * SECOND };
  }
}
