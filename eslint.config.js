// Type-aware lint so floating promises and unsafe `any` from protobuf Structs are caught.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// One boundary per program: the fetch program (function/fetch/) and the Function (the rest of
// function/) share only function/contract/, so neither can grow a dependency on the other's
// internals and the Job's contract stays in one small place. no-restricted-imports sees only the
// specifier, never the resolved path, so the patterns are written per directory depth (a file
// DEPTH directories down climbs DEPTH+1 times to reach function/); DEPTHS covers deeper trees
// than the repository has. It checks static imports and re-exports, type-only ones included;
// a dynamic import() is not checked (none crosses the boundary). Tests are not exempt: the ones
// under function/ need no exemption.
const DEPTHS = 6;
const up = (n) => String.raw`\.\./`.repeat(n);
const glob = (dir, depth) => `${dir}/${'*/'.repeat(depth)}*.ts`;
const BOUNDARY = {
  fetch:
    'the fetch program imports only function/fetch/ and function/contract/ (the shared contract): move what both sides need into function/contract/',
  function:
    'the Function does not import the fetch program: what both sides need belongs in function/contract/',
  contract:
    'function/contract/ imports neither the Function nor the fetch program: it is what they share',
};
const restrict = (files, regex, message, ignores) => ({
  files,
  ...(ignores ? { ignores } : {}),
  rules: { 'no-restricted-imports': ['error', { patterns: [{ regex, message }] }] },
});
const boundary = Array.from({ length: DEPTHS }, (_, depth) => [
  // Up to function/ and then anywhere but fetch/ or contract/ (or further up).
  restrict(
    [glob('function/fetch', depth)],
    `^${up(depth + 1)}(?!(fetch|contract)/)`,
    BOUNDARY.fetch,
  ),
  // Up out of contract/.
  restrict([glob('function/contract', depth)], `^${up(depth + 1)}`, BOUNDARY.contract),
  // Up to function/ (or ./ from function/ itself) and into fetch/.
  restrict(
    [glob('function', depth)],
    `^(${depth === 0 ? String.raw`\./` : up(depth)})fetch(/|$)`,
    BOUNDARY.function,
    ['function/fetch/**', 'function/contract/**'],
  ),
]).flat();

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.cache/'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
    },
  },
  ...boundary,
  { files: ['**/*.js'], ...tseslint.configs.disableTypeChecked },
);
