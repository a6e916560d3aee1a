import type { StorageBackendName } from '../../api/modelcache.js';
import type { StorageBackend } from '../model.js';
import { composeExistingPvc } from './existing-pvc.js';
import { composePvc } from './pvc.js';

export function backendFor(name: StorageBackendName): StorageBackend {
  switch (name) {
    case 'PVC':
      return composePvc;
    case 'ExistingPVC':
      return composeExistingPvc;
    default: {
      const unreachable: never = name;
      return unreachable;
    }
  }
}
