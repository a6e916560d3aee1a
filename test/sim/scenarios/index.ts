// Every fleet scenario, in the order the runner prints them.
import { FLEET } from './fleet.js';
import type { Scenario } from './kit.js';
import { LIFECYCLE } from './lifecycle.js';
import { STAGING } from './staging.js';

export const SCENARIOS: Scenario[] = [...STAGING, ...FLEET, ...LIFECYCLE];
