// Every fleet scenario, in the order the runner prints them.
import { FLEET, fanOut } from './fleet.js';
import type { Scenario } from './kit.js';
import { LIFECYCLE } from './lifecycle.js';
import { STAGING } from './staging.js';

// The 200-cluster fan-out first: its minutes of Function calls overlap everything after it.
export const SCENARIOS: Scenario[] = [fanOut, ...STAGING, ...FLEET, ...LIFECYCLE];
