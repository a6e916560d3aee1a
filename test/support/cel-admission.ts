// A small model of Kubernetes admission for the XRDs' schemas, shared by the tests that check
// them: defaults applied first, the OpenAPI checks, then each x-kubernetes-validations rule at
// its own node, evaluated with a real CEL implementation, with `self` (and `oldSelf` for
// transition rules) bound to the value there, nodes absent from the object skipped, and CEL
// skipped when a "blocking" schema error was found (Kubernetes' customresource strategy does the
// same). Messages are formatted as the API server formats them.
import { Environment, type ObjectSchema } from '@marcbachmann/cel-js';
import { asNode, isNode, openApiSchema, readYaml, type Node } from './xrd.js';

/** The openAPIV3Schema of an XRD file, by path relative to the repository root. */
export function readXrdSchema(relative: string): Node {
  return openApiSchema(readYaml(relative));
}

/** The schema nodes of an object node's properties, by name. */
export function properties(node: Node): Record<string, Node> {
  const props = node['properties'];
  if (!isNode(props)) return {};
  return Object.fromEntries(Object.entries(props).map(([k, v]) => [k, asNode(v, k)]));
}

function child(node: Node, key: 'items' | 'additionalProperties'): Node | undefined {
  const c = node[key];
  return isNode(c) ? c : undefined;
}

const INT_OR_STRING = 'int-or-string';

/** A node's type; `int-or-string` for `x-kubernetes-int-or-string` nodes, which declare none. */
function typeOf(node: Node): string {
  if (node['x-kubernetes-int-or-string'] === true) return INT_OR_STRING;
  return typeof node['type'] === 'string' ? node['type'] : 'object';
}

// ---------------------------------------------------------------------------------------------
// Rules.

export interface XRule {
  rule: string;
  message: string;
  fieldPath?: string;
  reason?: string;
}

export interface LocatedRule extends XRule {
  path: string;
  node: Node;
}

function rulesOf(node: Node): XRule[] {
  const raw = node['x-kubernetes-validations'];
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw new Error('x-kubernetes-validations must be a list');
  return raw.map((r: unknown) => {
    const v = asNode(r, 'rule');
    const { rule, message, fieldPath, reason } = v;
    if (typeof rule !== 'string' || typeof message !== 'string') {
      throw new Error(`every rule needs a rule and a message: ${JSON.stringify(v)}`);
    }
    return {
      rule,
      message,
      ...(typeof fieldPath === 'string' ? { fieldPath } : {}),
      ...(typeof reason === 'string' ? { reason } : {}),
    };
  });
}

/** Every rule below `node`, with the path of the node it sits at (`[*]` for items and values). */
export function collectRules(node: Node, path: string, out: LocatedRule[] = []): LocatedRule[] {
  for (const r of rulesOf(node)) out.push({ ...r, path, node });
  for (const [name, c] of Object.entries(properties(node))) collectRules(c, `${path}.${name}`, out);
  const items = child(node, 'items');
  if (items) collectRules(items, `${path}[*]`, out);
  const values = child(node, 'additionalProperties');
  if (values) collectRules(values, `${path}[*]`, out);
  return out;
}

const isTransition = (rule: string): boolean => /\boldSelf\b/.test(rule);

/**
 * Kubernetes' CEL environment has extension libraries cel-js does not ship; the ones these rules
 * use are registered here (string split and bytes() conversion are built in to cel-js).
 */
function withKubernetesLibraries(env: Environment): Environment {
  // k8s lists library: <list<int>>.sum() -> int.
  return env.registerFunction('list<int>.sum(): int', (list: readonly bigint[]): bigint =>
    list.reduce((a, b) => a + b, 0n),
  );
}

const evalEnv = withKubernetesLibraries(
  new Environment().registerVariable('self', 'dyn').registerVariable('oldSelf', 'dyn'),
);
type Compiled = (ctx: Record<string, unknown>) => unknown;
const compiled = new Map<string, Compiled>();
function compile(rule: string): Compiled {
  let fn = compiled.get(rule);
  if (!fn) {
    const parsed = evalEnv.parse(rule);
    fn = (ctx) => parsed(ctx) as unknown;
    compiled.set(rule, fn);
  }
  return fn;
}

/** The CEL type of a schema node, as cel-js declares variables; objects become custom types. */
function celType(node: Node): string | ObjectSchema {
  switch (typeOf(node)) {
    case 'string':
      return 'string';
    case 'integer':
      return 'int';
    case 'number':
      return 'double';
    case 'boolean':
      return 'bool';
    case INT_OR_STRING:
      return 'dyn';
    case 'array': {
      const items = child(node, 'items');
      const t = items ? celType(items) : 'dyn';
      return `list<${typeof t === 'string' ? t : 'dyn'}>`;
    }
    default: {
      const values = child(node, 'additionalProperties');
      if (values) {
        const t = celType(values);
        return `map<string, ${typeof t === 'string' ? t : 'dyn'}>`;
      }
      return Object.fromEntries(
        Object.entries(properties(node)).map(([name, c]) => [name, celType(c)]),
      );
    }
  }
}

/** An environment where `self`/`oldSelf` carry the node's declared type, as Kubernetes types them. */
export function typedEnv(node: Node): Environment {
  const t = celType(node);
  const env = withKubernetesLibraries(new Environment());
  if (typeof t === 'string') return env.registerVariable('self', t).registerVariable('oldSelf', t);
  return (
    env
      .registerType({ name: 'Self', schema: t })
      .registerVariable('self', 'Self')
      .registerVariable('oldSelf', 'Self')
      // Type checking only (never evaluated): cel-js has no == for custom types.
      .registerOperator('Self == Self', (a, b) => JSON.stringify(a) === JSON.stringify(b))
  );
}

/** JSON as CEL sees it under the schema: integers are CEL ints (bigint in cel-js). */
function toCel(node: Node, value: unknown): unknown {
  const type = typeOf(node);
  if (
    (type === 'integer' || type === INT_OR_STRING) &&
    typeof value === 'number' &&
    Number.isInteger(value)
  ) {
    return BigInt(value);
  }
  if (Array.isArray(value)) {
    const items = child(node, 'items');
    return items ? value.map((v) => toCel(items, v)) : value;
  }
  if (isNode(value)) {
    const props = properties(node);
    const values = child(node, 'additionalProperties');
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => {
        const c = props[k] ?? values;
        return [k, c ? toCel(c, v) : v];
      }),
    );
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// A small admission: defaulting, OpenAPI validation, CEL validation.

type ErrorType =
  | 'Required'
  | 'NotSupported'
  | 'TooLong'
  | 'TooMany'
  | 'TypeInvalid'
  | 'Invalid'
  | 'Forbidden'
  | 'Duplicate'
  | 'Unknown';

interface FieldError {
  type: ErrorType;
  path: string;
  text: string;
}

/** Error types after which Kubernetes does not run CEL rules (strategy.go hasBlockingErr). */
const BLOCKING: ReadonlySet<ErrorType> = new Set([
  'NotSupported',
  'Required',
  'TooLong',
  'TooMany',
  'TypeInvalid',
]);
export const NOT_CHECKED =
  'some validation rules were not checked because the object was invalid; correct the existing errors to complete validation';

/** Length as Kubernetes measures maxLength: in code points (Go runes), not UTF-16 units. */
function runes(s: string): number {
  return Array.from(s).length;
}

function shown(v: unknown): string {
  if (typeof v === 'string' && runes(v) > 64) return `"<${runes(v)} characters>"`;
  return JSON.stringify(v);
}

/** Apply schema defaults in place, as the API server does before validating (nested ones too). */
export function applyDefaults(node: Node, value: unknown): unknown {
  if (isNode(value)) {
    for (const [name, c] of Object.entries(properties(node))) {
      if (value[name] === undefined && c['default'] !== undefined) {
        value[name] = structuredClone(c['default']);
      }
      if (value[name] !== undefined) value[name] = applyDefaults(c, value[name]);
    }
    const values = child(node, 'additionalProperties');
    if (values) for (const k of Object.keys(value)) value[k] = applyDefaults(values, value[k]);
  }
  const items = child(node, 'items');
  if (Array.isArray(value) && items) return value.map((v) => applyDefaults(items, v));
  return value;
}

/** The JSON type of a value as go-openapi names it in errors. */
function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function hasType(type: string, v: unknown): boolean {
  switch (type) {
    case 'object':
      return isNode(v);
    case 'array':
      return Array.isArray(v);
    case 'string':
      return typeof v === 'string';
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'number':
      return typeof v === 'number';
    case 'boolean':
      return typeof v === 'boolean';
    case INT_OR_STRING:
      return typeof v === 'string' || (typeof v === 'number' && Number.isInteger(v));
    default:
      throw new Error(`unknown schema type ${type}`);
  }
}

function num(node: Node, key: string): number | undefined {
  const v = node[key];
  return typeof v === 'number' ? v : undefined;
}

function validateSchema(node: Node, value: unknown, path: string, out: FieldError[]): void {
  const type = typeOf(node);
  if (!hasType(type, value)) {
    // The API server turns int-or-string into the type list [integer, string] and joins it.
    const expected = type === INT_OR_STRING ? 'integer,string' : type;
    out.push({
      type: 'TypeInvalid',
      path,
      text: `Invalid value: "${jsonType(value)}": ${path} in body must be of type ${expected}: "${jsonType(value)}"`,
    });
    return;
  }
  const e = node['enum'];
  if (Array.isArray(e) && !e.includes(value)) {
    const supported = e.map((s) => JSON.stringify(s)).join(', ');
    out.push({
      type: 'NotSupported',
      path,
      text: `Unsupported value: ${shown(value)}: supported values: ${supported}`,
    });
  }
  if (typeof value === 'string') {
    const length = runes(value);
    const max = num(node, 'maxLength');
    const min = num(node, 'minLength');
    if (max !== undefined && length > max) {
      out.push({ type: 'TooLong', path, text: `Too long: may not be more than ${max} bytes` });
    }
    if (min !== undefined && length < min) {
      out.push({
        type: 'Invalid',
        path,
        text: `Invalid value: ${shown(value)}: ${path} in body should be at least ${min} chars long`,
      });
    }
    const pattern = node['pattern'];
    if (typeof pattern === 'string' && !new RegExp(pattern, 'u').test(value)) {
      out.push({
        type: 'Invalid',
        path,
        text: `Invalid value: ${shown(value)}: ${path} in body should match '${pattern}'`,
      });
    }
  }
  if (typeof value === 'number') {
    const max = num(node, 'maximum');
    const min = num(node, 'minimum');
    if (min !== undefined && value < min) {
      out.push({
        type: 'Invalid',
        path,
        text: `Invalid value: ${value}: ${path} in body should be greater than or equal to ${min}`,
      });
    }
    if (max !== undefined && value > max) {
      out.push({
        type: 'Invalid',
        path,
        text: `Invalid value: ${value}: ${path} in body should be less than or equal to ${max}`,
      });
    }
  }
  const items = child(node, 'items');
  if (Array.isArray(value)) {
    const max = num(node, 'maxItems');
    const min = num(node, 'minItems');
    if (max !== undefined && value.length > max) {
      out.push({
        type: 'TooMany',
        path,
        text: `Too many: ${value.length}: must have at most ${max} items`,
      });
    }
    if (min !== undefined && value.length < min) {
      out.push({
        type: 'Invalid',
        path,
        text: `Invalid value: ${value.length}: ${path} in body should have at least ${min} items`,
      });
    }
    if (items) {
      value.forEach((v, i) => {
        validateSchema(items, v, `${path}[${i}]`, out);
      });
    }
  }
  if (isNode(value)) {
    const count = Object.keys(value).length;
    const max = num(node, 'maxProperties');
    const min = num(node, 'minProperties');
    if (max !== undefined && count > max) {
      out.push({
        type: 'TooMany',
        path,
        text: `Too many: ${count}: must have at most ${max} items`,
      });
    }
    if (min !== undefined && count < min) {
      out.push({
        type: 'Invalid',
        path,
        text: `Invalid value: ${count}: ${path} in body should have at least ${min} properties`,
      });
    }
    const required = Array.isArray(node['required']) ? (node['required'] as string[]) : [];
    for (const name of required) {
      if (value[name] === undefined) {
        out.push({ type: 'Required', path: `${path}.${name}`, text: 'Required value' });
      }
    }
    const props = properties(node);
    const values = child(node, 'additionalProperties');
    for (const [k, v] of Object.entries(value)) {
      const c = props[k];
      if (c) validateSchema(c, v, `${path}.${k}`, out);
      else if (values) validateSchema(values, v, `${path}.${k}`, out);
      else out.push({ type: 'Unknown', path: `${path}.${k}`, text: 'unknown field' });
    }
  }
}

function ruleError(rule: XRule, node: Node, path: string): FieldError {
  const at = `${path}${rule.fieldPath ?? ''}`;
  switch (rule.reason) {
    case 'FieldValueRequired':
      return { type: 'Required', path: at, text: `Required value: ${rule.message}` };
    case 'FieldValueForbidden':
      return { type: 'Forbidden', path: at, text: `Forbidden: ${rule.message}` };
    case 'FieldValueDuplicate':
      return { type: 'Duplicate', path: at, text: `Duplicate value: ${rule.message}` };
    default:
      return {
        type: 'Invalid',
        path: at,
        text: `Invalid value: "${typeOf(node)}": ${rule.message}`,
      };
  }
}

function validateRules(
  node: Node,
  value: unknown,
  old: unknown,
  path: string,
  out: FieldError[],
): void {
  if (value === undefined) return; // absent nodes are not validated
  for (const r of rulesOf(node)) {
    if (isTransition(r.rule) && old === undefined) continue; // create, or no correlated old value
    let result: unknown;
    try {
      result = compile(r.rule)({
        self: toCel(node, value),
        oldSelf: old === undefined ? null : toCel(node, old),
      });
    } catch (err) {
      const summary = err instanceof Error ? err.message.split('\n')[0] : String(err);
      out.push({
        type: 'Invalid',
        path,
        text: `Invalid value: "${typeOf(node)}": ${summary ?? ''} evaluating rule: ${r.rule}`,
      });
      continue;
    }
    if (result !== true) out.push(ruleError(r, node, path));
  }
  if (isNode(value)) {
    const oldNode = isNode(old) ? old : undefined;
    for (const [name, c] of Object.entries(properties(node))) {
      validateRules(c, value[name], oldNode?.[name], `${path}.${name}`, out);
    }
    const values = child(node, 'additionalProperties');
    if (values) {
      for (const [k, v] of Object.entries(value)) {
        validateRules(values, v, oldNode?.[k], `${path}.${k}`, out); // map entries correlate by key
      }
    }
  }
  const items = child(node, 'items');
  if (Array.isArray(value) && items) {
    // Atomic lists: Kubernetes does not correlate items, so transition rules do not run there.
    value.forEach((v, i) => {
      validateRules(items, v, undefined, `${path}[${i}]`, out);
    });
  }
}

/** Every error the API server would report for `object` (an update when `old` is given). */
export function admit(schema: Node, path: string, object: unknown, old?: unknown): string[] {
  const value = applyDefaults(schema, structuredClone(object));
  const oldValue = old === undefined ? undefined : applyDefaults(schema, structuredClone(old));
  const errors: FieldError[] = [];
  validateSchema(schema, value, path, errors);
  // kubectl asks for strict field validation: unknown fields fail decoding, before validation.
  const unknown = errors.filter((e) => e.type === 'Unknown');
  if (unknown.length > 0) {
    return [`strict decoding error: ${unknown.map((e) => `unknown field "${e.path}"`).join(', ')}`];
  }
  if (errors.some((e) => BLOCKING.has(e.type))) {
    return [...errors.map((e) => `${e.path}: ${e.text}`), NOT_CHECKED];
  }
  validateRules(schema, value, oldValue, path, errors);
  return errors.map((e) => `${e.path}: ${e.text}`);
}
