#!/usr/bin/env bash
# ctest openapi_lint (issue 14): the OpenAPI document passes Redocly's linter (OpenAPI 3.0
# schema and its recommended rules, which caught `nullable` without `type`) and describes what
# the query listener answers beyond the routes: HEAD on every path, 405 with Allow, 401 with
# WWW-Authenticate and 503 with Retry-After. Usage: openapi_lint.sh DOCUMENT NPM_PREFIX
# The linter comes from npm (scripts/test installs it into NPM_PREFIX); without it this test
# fails, it never skips.
set -euo pipefail
doc="$1"
prefix="$2"
redocly="$prefix/node_modules/.bin/redocly"
if ! command -v node >/dev/null || [ ! -x "$redocly" ]; then
  echo "FAIL: the OpenAPI linter is not installed (need node and $redocly);" >&2
  echo "      scripts/test installs it, or: npm install --prefix $prefix @redocly/cli@1.34.5" >&2
  exit 1
fi
"$redocly" lint --format stylish "$doc"
node - "$doc" <<'JS'
const doc = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'));
const resolve = (r) => (r && r.$ref ? r.$ref.split('/').slice(1).reduce((o, k) => o[k], doc) : r);
const problems = [];
for (const [path, item] of Object.entries(doc.paths)) {
  for (const method of ['get', 'head']) {
    if (!item[method]) problems.push(`${path}: no ${method}`);
  }
  for (const [method, op] of Object.entries(item)) {
    const responses = op.responses || {};
    const header = (code, name) => {
      const r = resolve(responses[code]);
      if (!r) return problems.push(`${method} ${path}: no ${code}`);
      if (!(r.headers && r.headers[name])) problems.push(`${method} ${path}: ${code} without ${name}`);
    };
    header('405', 'Allow');
    if (responses['401'] || op.security === undefined) header('401', 'WWW-Authenticate');
    if (responses['503']) header('503', 'Retry-After');
    if (!responses['400']) problems.push(`${method} ${path}: no 400 (malformed requests)`);
  }
}
if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log(`checked ${Object.keys(doc.paths).length} paths`);
JS
